"""The reminder and the notifier as processes: a customer with two unpaid orders gets one
message for both at the gateway, paying one sends its order confirmation (masked contact and
address), and `followup history` run as a command shows every decision."""

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from followup.demo.receiver import WebhookReceiver
from tests.e2e.conftest import ServiceProcess
from tests.harness import Kafka, eventually, order_created, payment_succeeded

pytestmark = pytest.mark.e2e


async def _of_kind(gateway: WebhookReceiver, kind: str) -> list[dict[str, object]]:
    return [m.payload for m in gateway.accepted if m.payload["kind"] == kind]


async def test_two_orders_one_message_then_a_confirmation_and_the_history(
    kafka: Kafka,
    stack_env: dict[str, str],
    services: dict[str, ServiceProcess],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    gateway, _ = receiver
    now = datetime.now(UTC)
    deadline = now + timedelta(hours=24)
    for order_id in ("O-M1", "O-M2"):
        await kafka.publish(
            "shop.orders",
            order_created(
                order_id, at=now, deadline=deadline, customer_id="C-M", phone="+8613812345678"
            ),
            key=order_id,
        )

    reminders = await eventually(
        lambda: _of_kind(gateway, "unpaid_reminder"), lambda r: len(r) >= 1, what="the reminder"
    )
    message = reminders[0]
    assert message["meta"] == {"tier": 1, "segment": "new", "orders": 2}
    text = str(message["text"])
    assert "O-M1" in text
    assert "O-M2" in text
    assert "您有 2 笔订单还没有付款" in text

    await kafka.publish(
        "shop.payments", payment_succeeded("O-M1", at=now + timedelta(seconds=5)), key="O-M1"
    )
    confirmations = await eventually(
        lambda: _of_kind(gateway, "order_confirmation"),
        lambda c: len(c) == 1,
        what="the order confirmation",
    )
    confirmation = str(confirmations[0]["text"])
    assert "订单 O-M1 已付款成功" in confirmation
    assert "138****5678" in confirmation
    assert "13812345678" not in confirmation
    # Still exactly one reminder: the second order's tier 1 was merged into the first.
    assert len(await _of_kind(gateway, "unpaid_reminder")) == 1

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "followup", "history", "--customer", "C-M"],
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    history = result.stdout
    sent, other = message["order_id"], ({"O-M1", "O-M2"} - {message["order_id"]}).pop()
    assert f"{sent}       reminder tier 1 sent  (tier_due_with_1_more" in history
    # Both tiers fell due together: the other order's tier is merged into the message.
    assert f"{other}       reminder tier 1 merged  (" in history
    assert "O-M1       order paid after a reminder (tier 1)" in history
    assert "O-M1       order confirmation sent" in history

"""Reliable delivery: the permanent idempotency key, expiry and cancellation recorded as
suppressed, retries with backoff bounded by attempts, refusals failing at once, the
secondary gateway and the circuit breaker, dry-run, status events and history."""

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from contracts.codec import envelope
from contracts.notifications import (
    MessageClass,
    NotificationKind,
    Priority,
    SendNotificationCommand,
)
from followup import cli
from tests.harness import eventually
from tests.integration.notifier.conftest import Notifier, NotifierFactory

pytestmark = pytest.mark.integration

SMS_ONLY = """
[notifier]
retry_base = "1m"
retry_max = "4m"
max_attempts = 3

[notifier.routes]
order_confirmation = ["sms"]
"""

BREAKER = """
[notifier.circuit_breaker]
failures = 2
cooldown = "5m"
"""

REMINDER = {
    "customer_name": "王女士",
    "order_id": "O-30",
    "items": [{"title": "羊毛混纺大衣", "quantity": 1, "options": {}}],
    "total": "599.00",
    "currency": "CNY",
    "pay_deadline": "2026-11-24T10:00:00+08:00",
}


async def send_reminder(n: Notifier, number: str, tier: int, **fields: Any) -> None:
    """Reminder ``tier`` for order O-<number> of customer C-<number>, as the reminder sends it."""
    await n.send(
        f"unpaid_reminder:O-{number}:{tier}",
        NotificationKind.UNPAID_REMINDER,
        customer_id=f"C-{number}",
        order_id=f"O-{number}",
        priority=Priority.LOW,
        message_class=MessageClass.MARKETING,
        variables=REMINDER,
        **fields,
    )


async def test_retries_back_off_and_end_after_max_attempts_refusals_fail_at_once(
    notifier: NotifierFactory,
) -> None:
    async with notifier(SMS_ONLY) as n:
        p = n.providers
        await n.order("O-10", "C-10", phone="+8613800000010")
        await n.order("O-11", "C-11", phone="+8613800000011")
        await n.order("O-12", "C-12", phone="+8613900000012")
        for customer in ("C-10", "C-11", "C-12"):
            await n.recipient_known(customer)

        p.twilio.fail_next(500, 503)
        await n.send(
            "confirm:O-10",
            NotificationKind.ORDER_CONFIRMATION,
            order_id="O-10",
            variables={"order_id": "O-10"},
        )
        first = await n.until_reason("confirm:O-10", "sms/twilio: twilio 20500")
        assert first["status"] == "pending"
        assert first["attempts"] == 1
        # Jittered backoff: between half and all of the first step (1 minute).
        wait = first["next_attempt_at"] - n.clock.now()
        assert timedelta(seconds=30) <= wait <= timedelta(minutes=1)

        n.clock.advance(timedelta(minutes=1))
        second = await eventually(
            lambda: n.row("confirm:O-10"),
            lambda r: r is not None and r["attempts"] == 2,
            what="second try",
        )
        assert second is not None
        assert (
            timedelta(minutes=1)
            <= second["next_attempt_at"] - n.clock.now()
            <= timedelta(minutes=2)
        )
        n.clock.advance(timedelta(minutes=2))
        sent = await n.until_status("confirm:O-10", "sent")
        assert sent["attempts"] == 3
        assert await n.attempts("confirm:O-10") == [
            ("sms", "twilio", "retry"),
            ("sms", "twilio", "retry"),
            ("sms", "twilio", "delivered"),
        ]

        # Bounded by attempts: three temporary failures and the message fails, with why.
        p.twilio.fail_next(500, 500, 500)
        await n.send(
            "confirm:O-11",
            NotificationKind.ORDER_CONFIRMATION,
            order_id="O-11",
            variables={"order_id": "O-11"},
        )
        await n.until_reason("confirm:O-11", "sms/twilio")
        for tries in (2, 3):
            n.clock.advance(timedelta(minutes=4))

            async def made() -> int:
                return len(await n.attempts("confirm:O-11"))

            def reached(count: int, expected: int = tries) -> bool:
                return count == expected

            await eventually(made, reached, what="a try")
        gave_up = await n.until_status("confirm:O-11", "failed")
        assert gave_up["reason"].startswith(
            "gave_up: 3 attempts, the last: sms/twilio: twilio 20500"
        )

        # A refusal (4xx) is not retried: it fails at once with Twilio's reason.
        p.twilio.refused_numbers.add("+8613900000012")
        await n.send(
            "confirm:O-12",
            NotificationKind.ORDER_CONFIRMATION,
            order_id="O-12",
            variables={"order_id": "O-12"},
        )
        refused = await n.until_status("confirm:O-12", "failed")
        assert refused["attempts"] == 1
        assert refused["reason"] == (
            "sms/twilio: twilio 21211: The 'To' number 139****0012 is not a valid phone number."
        )

        statuses = await n.statuses(expected=3)
        assert [
            statuses[k]["type"].rsplit(".", 1)[1]
            for k in ("confirm:O-10", "confirm:O-11", "confirm:O-12")
        ] == [
            "sent",
            "failed",
            "failed",
        ]
        assert statuses["confirm:O-11"]["data"]["attempts"] == 3


async def test_the_backup_gateway_takes_over_and_the_circuit_opens_and_closes(
    notifier: NotifierFactory,
) -> None:
    async with notifier(BREAKER) as n:
        p = n.providers
        p.gateway._answers.extend([503, 503])
        for i in (1, 2):
            await n.send(
                f"update:O-4{i}",
                NotificationKind.SHIPMENT_UPDATE,
                customer_id=f"C-4{i}",
                order_id=f"O-4{i}",
                variables={"order_id": f"O-4{i}", "note": "在途"},
            )
            row = await n.until_status(f"update:O-4{i}", "sent")
            assert (row["channel"], row["provider"]) == ("webhook", "gateway_backup")
        assert len(p.gateway.received) == 2

        # Two failures in a row opened the circuit: the primary is not called at all now.
        await n.send(
            "update:O-43",
            NotificationKind.SHIPMENT_UPDATE,
            customer_id=f"C-4{i}",
            order_id="O-43",
            variables={"order_id": "O-43", "note": "在途"},
        )
        await n.until_status("update:O-43", "sent")
        assert await n.attempts("update:O-43") == [("webhook", "gateway_backup", "delivered")]
        assert len(p.gateway.received) == 2
        assert [m.payload["order_id"] for m in p.gateway_backup.accepted] == [
            "O-41",
            "O-42",
            "O-43",
        ]
        assert all(m.signature_valid for m in p.gateway_backup.accepted)

        # After the cooldown one trial call goes to the primary; it answers, the circuit closes.
        n.clock.advance(timedelta(minutes=5))
        for i in (4, 5):
            await n.send(
                f"update:O-4{i}",
                NotificationKind.SHIPMENT_UPDATE,
                customer_id=f"C-4{i}",
                order_id=f"O-4{i}",
                variables={"order_id": f"O-4{i}", "note": "在途"},
            )
            row = await n.until_status(f"update:O-4{i}", "sent")
            assert row["provider"] == "gateway"


async def test_one_message_per_idempotency_key_expiry_and_cancellation_are_recorded(
    notifier: NotifierFactory, database: str
) -> None:
    async with notifier() as n:
        p = n.providers
        command = await n.send(
            "update:O-20:1",
            NotificationKind.SHIPMENT_UPDATE,
            customer_id="C-20",
            order_id="O-20",
            variables={"order_id": "O-20", "note": "已发货"},
        )
        # The same command again under a new event id, and the very same event twice.
        event = envelope(SendNotificationCommand, command, source="test", time=n.clock.now())
        await n.publish(event, "C-20")
        await n.publish(event, "C-20")
        await n.until_status("update:O-20:1", "sent")

        # Expired before it could go.
        await n.send(
            "update:O-20:late",
            NotificationKind.SHIPMENT_UPDATE,
            customer_id="C-20",
            order_id="O-20",
            expires_at=n.clock.now() - timedelta(minutes=1),
            variables={"order_id": "O-20", "note": "x"},
        )
        expired = await n.until_status("update:O-20:late", "suppressed")
        assert expired["reason"] == "expired"

        # A cancellation that overtakes its command still wins (the order was paid).
        await n.cancel(
            order_id="O-21",
            customer_id="C-21",
            kinds=[NotificationKind.UNPAID_REMINDER],
            reason="order_paid",
        )
        await eventually(
            lambda: n.db.fetchval("SELECT count(*) FROM notifier.cancellations"),
            lambda c: c == 1,
            what="cancellation remembered",
        )
        await send_reminder(n, "21", 1)
        overtaken = await n.until_status("unpaid_reminder:O-21:1", "suppressed")
        assert overtaken["reason"] == "cancelled: order_paid"

        # A message waiting for its time is cancelled by its key.
        await send_reminder(n, "22", 2, not_before=n.clock.now() + timedelta(hours=1))
        await n.until_status("unpaid_reminder:O-22:2", "pending")
        await n.cancel(
            idempotency_keys=["unpaid_reminder:O-22:2"],
            customer_id="C-22",
            reason="order_cancelled",
        )
        waiting = await n.until_status("unpaid_reminder:O-22:2", "suppressed")
        assert waiting["reason"] == "cancelled: order_cancelled"
        n.clock.advance(timedelta(hours=2))

        # A control message after everything above: the queue moved past all of it.
        await n.send(
            "update:O-20:2",
            NotificationKind.SHIPMENT_UPDATE,
            customer_id="C-20",
            order_id="O-20",
            variables={"order_id": "O-20", "note": "派送中"},
        )
        await n.until_status("update:O-20:2", "sent")
        assert [m.payload["idempotency_key"] for m in p.gateway.received] == [
            "update:O-20:1",
            "update:O-20:2",
        ]
        assert await n.db.fetchval("SELECT count(*) FROM notifier.deliveries") == 5

        statuses = await n.statuses(expected=5)
        assert {
            k: (e["type"].rsplit(".", 1)[1], e["data"].get("reason")) for k, e in statuses.items()
        } == {
            "update:O-20:1": ("sent", None),
            "update:O-20:late": ("suppressed", "expired"),
            "unpaid_reminder:O-21:1": ("suppressed", "cancelled: order_paid"),
            "unpaid_reminder:O-22:2": ("suppressed", "cancelled: order_cancelled"),
            "update:O-20:2": ("sent", None),
        }

        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli.app,
            ["history", "--customer", "C-20"],
            env={"DATABASE_URL": database},
        )
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert any(
            "notifier   O-20       shipment_update queued  (update:O-20:1" in line for line in lines
        )
        assert any(
            "shipment_update attempt 1 via webhook/gateway: delivered" in line for line in lines
        )
        assert any("shipment_update sent via webhook/gateway" in line for line in lines)
        assert any("shipment_update suppressed  (expired)" in line for line in lines)


async def test_a_dead_workers_messages_are_sent_once_its_lease_runs_out(
    notifier: NotifierFactory,
) -> None:
    async with notifier('[notifier]\nlease = "2s"\n') as n:
        await n.send(
            "update:O-40:1",
            NotificationKind.SHIPMENT_UPDATE,
            customer_id="C-40",
            order_id="O-40",
            not_before=n.clock.now() + timedelta(days=1),
            variables={"order_id": "O-40", "note": "已发货"},
        )
        await n.until_status("update:O-40:1", "pending")
        # As another replica does when it claims the message and then dies mid-send.
        await n.db.execute(
            "UPDATE notifier.deliveries SET status = 'sending', "
            "lease_until = clock_timestamp() + interval '1 hour' WHERE idempotency_key = $1",
            "update:O-40:1",
        )
        # Business time passing is not the dead worker's time running out: a live lease holds
        # while a later message goes out (and proves the workers claimed after the jump).
        n.clock.advance(timedelta(days=2))
        await n.send(
            "update:O-41:1",
            NotificationKind.SHIPMENT_UPDATE,
            customer_id="C-41",
            order_id="O-41",
            variables={"order_id": "O-41", "note": "已发货"},
        )
        await n.until_status("update:O-41:1", "sent")
        assert await n.status("update:O-40:1") == "sending"

        await n.db.execute(
            "UPDATE notifier.deliveries SET lease_until = clock_timestamp() - interval '1 second' "
            "WHERE idempotency_key = $1",
            "update:O-40:1",
        )
        await n.until_status("update:O-40:1", "sent")
        assert await n.attempts("update:O-40:1") == [("webhook", "gateway", "delivered")]


async def test_dry_run_renders_and_logs_without_sending_or_naming_the_customer(
    notifier: NotifierFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.notifier.service")
    async with notifier(notifier_dry_run=True) as n:
        await send_reminder(n, "30", 1)
        row = await n.until_status("unpaid_reminder:O-30:1", "suppressed")
        assert row["reason"] == "dry_run"
        assert n.providers.gateway.received == []
    logged = [r.getMessage() for r in caplog.records if "dry run" in r.getMessage()]
    assert len(logged) == 1
    assert "O-30" in logged[0]
    assert "11月24日 10:00" in logged[0]
    assert "王女士" not in logged[0]
    assert "[name]，您好！" in logged[0]

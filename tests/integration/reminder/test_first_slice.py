"""The first slice through real Kafka, PostgreSQL and HTTP: order -> timer -> outbox ->
notifier -> signed webhook, with the reminder and notifier running in this process on a
manual clock."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from typer.testing import CliRunner

from followup import cli
from followup.clock import ManualClock
from followup.demo.receiver import ReceiverServer, WebhookReceiver
from services.notifier.app import create_app as notifier_app
from services.notifier.settings import NotifierSettings
from services.reminder.app import create_app as reminder_app
from services.reminder.settings import ReminderSettings
from tests.harness import (
    WEBHOOK_BODY_FIELDS,
    Kafka,
    eventually,
    order_created,
    payment_succeeded,
    running,
    service_settings,
)

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
SECRET = "test-secret-0123456789abcdef"


@dataclass
class Slice:
    kafka: Kafka
    clock: ManualClock
    receiver: WebhookReceiver
    db: asyncpg.Connection

    async def timers_of(self, order_id: str) -> int:
        count: int = await self.db.fetchval(
            "SELECT count(*) FROM reminder.timers WHERE subject = $1", order_id
        )
        return count

    async def decisions_of(self, order_id: str) -> list[tuple[int | None, str, str]]:
        rows = await self.db.fetch(
            "SELECT tier, decision, reason FROM reminder.reminder_history "
            "WHERE order_id = $1 ORDER BY id, step",
            order_id,
        )
        return [(r["tier"], r["decision"], r["reason"]) for r in rows]


@pytest.fixture
async def first_slice(kafka: Kafka, database: str) -> AsyncIterator[Slice]:
    clock = ManualClock(T0)
    receiver = WebhookReceiver(SECRET)
    server = ReceiverServer(receiver)
    url = await server.start()
    reminder = reminder_app(service_settings(ReminderSettings, kafka, database), clock=clock)
    notifier = notifier_app(
        service_settings(
            NotifierSettings,
            kafka,
            database,
            notifier_webhook_url=url,
            notifier_webhook_secret=SECRET,
        ),
        clock=clock,
    )
    db = await asyncpg.connect(database)
    try:
        async with running(reminder, notifier):
            yield Slice(kafka, clock, receiver, db)
    finally:
        await db.close()
        await server.stop()


async def test_unpaid_order_gets_its_first_reminder_on_the_gateway(first_slice: Slice) -> None:
    s = first_slice
    await s.kafka.publish(
        "shop.orders", order_created("O-1", at=T0, deadline=T0 + timedelta(hours=24)), key="O-1"
    )
    await eventually(lambda: s.timers_of("O-1"), lambda n: n == 1, what="the first tier planned")

    s.clock.advance(timedelta(minutes=15))
    await eventually(
        lambda: _async(len(s.receiver.accepted)), lambda n: n == 1, what="the reminder"
    )

    message = s.receiver.accepted[0]
    body = message.payload
    assert message.signature_valid
    assert message.headers["content-type"] == "application/json"
    assert message.headers["idempotency-key"] == "unpaid_reminder:O-1:1"
    assert list(body) == WEBHOOK_BODY_FIELDS
    assert body["kind"] == "unpaid_reminder"
    assert body["order_id"] == "O-1"
    assert body["customer_id"] == "C-1"
    assert body["case_id"] is None
    assert body["locale"] == "zh-CN"
    assert body["meta"] == {"tier": 1, "segment": "new"}
    assert body["text"].startswith("王女士，您好，欢迎第一次光临本店！")  # unpaid_reminder.new.1
    assert "O-1" in body["text"]
    assert "王女士" in body["text"]
    assert "11月23日 10:00" in body["text"]  # the deadline, in the customer's timezone
    assert datetime.fromisoformat(body["created_at"]).utcoffset() == timedelta(hours=8)

    statuses = await s.kafka.read_all("followup.notification-status", expected=1)
    status = json.loads(statuses[0].value)
    assert status["type"] == "followup.notification.sent"
    assert status["data"]["message_id"] == body["message_id"]
    assert status["data"]["channel"] == "webhook"


async def test_payment_before_the_due_time_means_no_reminder(first_slice: Slice) -> None:
    s = first_slice
    deadline = T0 + timedelta(hours=24)
    await s.kafka.publish("shop.orders", order_created("O-2", at=T0, deadline=deadline), key="O-2")
    await eventually(lambda: s.timers_of("O-2"), lambda n: n == 1, what="the first tier planned")
    await s.kafka.publish(
        "shop.payments", payment_succeeded("O-2", at=T0 + timedelta(minutes=5)), key="O-2"
    )
    await eventually(lambda: s.timers_of("O-2"), lambda n: n == 0, what="tiers cancelled")

    # A control order due at the same moment proves the timers ran past that time.
    await s.kafka.publish("shop.orders", order_created("O-3", at=T0, deadline=deadline), key="O-3")
    await eventually(lambda: s.timers_of("O-3"), lambda n: n == 1, what="control tier planned")
    s.clock.advance(timedelta(minutes=15))
    await eventually(
        lambda: _async(
            len([m for m in s.receiver.accepted if m.payload["kind"] == "unpaid_reminder"])
        ),
        lambda n: n >= 1,
        what="control reminder",
    )

    reminders = [m.payload for m in s.receiver.received if m.payload["kind"] == "unpaid_reminder"]
    assert [r["order_id"] for r in reminders] == ["O-3"]
    assert await s.decisions_of("O-2") == [
        (1, "scheduled", "tier_planned"),
        (2, "scheduled", "tier_planned"),
        (3, "scheduled", "tier_planned"),
        (None, "cancelled", "order_paid"),
        (None, "sent", "order_confirmation"),
    ]
    # The payment's order confirmation went through the notifier to the gateway instead.
    await eventually(
        lambda: _async(
            len([m for m in s.receiver.accepted if m.payload["kind"] == "order_confirmation"])
        ),
        lambda n: n == 1,
        what="the order confirmation",
    )
    confirmation = next(
        m.payload for m in s.receiver.accepted if m.payload["kind"] == "order_confirmation"
    )
    assert confirmation["order_id"] == "O-2"
    assert "羊毛混纺大衣（M，藏青） × 1" in confirmation["text"]
    assert "请在发货前直接回复这条消息" in confirmation["text"]


async def test_payment_that_arrives_before_the_order_event_is_remembered(
    first_slice: Slice,
) -> None:
    s = first_slice
    await s.kafka.publish(
        "shop.payments", payment_succeeded("O-4", at=T0 + timedelta(minutes=1)), key="O-4"
    )
    await eventually(
        lambda: s.db.fetchval("SELECT status FROM reminder.orders WHERE order_id = 'O-4'"),
        lambda status: status == "paid",
        what="payment recorded",
    )
    await s.kafka.publish(
        "shop.orders", order_created("O-4", at=T0, deadline=T0 + timedelta(hours=24)), key="O-4"
    )
    await eventually(lambda: s.decisions_of("O-4"), lambda d: len(d) == 3, what="decisions")
    assert await s.decisions_of("O-4") == [
        (None, "cancelled", "order_paid"),
        (None, "skipped", "order_paid"),
        (None, "sent", "order_confirmation"),  # now that the order's items are known
    ]
    assert await s.timers_of("O-4") == 0


async def _async(value: int) -> int:
    return value


async def test_history_shows_every_decision_for_the_order(
    first_slice: Slice, database: str
) -> None:
    s = first_slice
    await s.kafka.publish(
        "shop.orders", order_created("O-5", at=T0, deadline=T0 + timedelta(hours=24)), key="O-5"
    )
    await eventually(lambda: s.timers_of("O-5"), lambda n: n == 1, what="the first tier planned")
    s.clock.advance(timedelta(minutes=15))
    await eventually(
        lambda: _async(len(s.receiver.accepted)), lambda n: n == 1, what="the reminder"
    )

    await eventually(
        lambda: s.db.fetchval("SELECT status FROM notifier.deliveries WHERE order_id = 'O-5'"),
        lambda status: status == "sent",
        what="the delivery recorded",
    )

    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli.app, ["history", "--order", "O-5"], env={"DATABASE_URL": database}
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "  reminder   " in line]
    assert len(lines) == 4
    for tier, line in enumerate(lines[:3], start=1):
        assert f"reminder   O-5        reminder tier {tier} scheduled  (tier_planned, due " in line
    assert (
        "reminder tier 1 sent  (tier_due, due 2026-11-22T02:15:00+00:00, segment new)" in lines[3]
    )
    # The notifier's part of the story: queued, the gateway call, delivered.
    delivered = [
        line.split("O-5", 1)[1].strip()
        for line in result.output.splitlines()
        if "  notifier   " in line
    ]
    assert [line.split("  (")[0] for line in delivered] == [
        "unpaid_reminder queued",
        "unpaid_reminder attempt 1 via webhook/gateway: delivered",
        "unpaid_reminder sent via webhook/gateway",
    ]

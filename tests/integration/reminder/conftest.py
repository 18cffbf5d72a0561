"""The reminder service in this process on a manual clock, against the real broker and
database; its commands are read back from ``followup.notifications``."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from faststream.asgi import AsgiFastStream

from followup.clock import ManualClock
from services.reminder.app import create_app
from services.reminder.settings import ReminderSettings
from tests.harness import Kafka, cloud_event, eventually, running, service_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Sunday morning in Shanghai, well outside quiet hours.
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)


def order_event(
    order_id: str,
    *,
    at: datetime,
    deadline: datetime | None = None,
    customer_id: str = "C-1",
    stock_left: int = 3,
    event_id: str | None = None,
    total: str = "599.00",
    **customer: Any,
) -> dict[str, Any]:
    """``shop.order.created`` as the platform writes it; ``customer`` adds hints and contact."""
    return cloud_event(
        "shop.order.created",
        {
            "order_id": order_id,
            "customer": {"id": customer_id, "name": "王女士", **customer},
            "items": [
                {
                    "sku": "COAT-M",
                    "title": "羊毛混纺大衣",
                    "quantity": 1,
                    "unit_price": total,
                    "options": {"size": "M", "color": "藏青"},
                    "stock_left": stock_left,
                }
            ],
            "total": total,
            "currency": "CNY",
            "created_at": at.isoformat(),
            "pay_deadline": (deadline or at + timedelta(hours=24)).isoformat(),
            "shipping_address": {
                "recipient": "王女士",
                "phone": "+8613812345678",
                "region": "上海市",
                "city": "上海市",
                "district": "浦东新区",
                "street": "世纪大道100号3栋1201室",
            },
        },
        time=at,
        event_id=event_id,
    )


def paid_event(
    order_id: str, *, at: datetime, amount: str = "599.00", event_id: str | None = None
) -> dict[str, Any]:
    return cloud_event(
        "shop.payment.succeeded",
        {"order_id": order_id, "paid_at": at.isoformat(), "amount": amount, "currency": "CNY"},
        time=at,
        event_id=event_id,
    )


def settled_event(kind: str, order_id: str, *, at: datetime) -> dict[str, Any]:
    field_name = {"cancelled": "cancelled_at", "closed": "closed_at"}[kind]
    return cloud_event(
        f"shop.order.{kind}", {"order_id": order_id, field_name: at.isoformat()}, time=at
    )


@dataclass
class ReminderUnderTest:
    kafka: Kafka
    clock: ManualClock
    db: asyncpg.Connection
    apps: list[AsgiFastStream] = field(default_factory=list)

    async def publish(self, topic: str, *events: dict[str, Any]) -> None:
        for event in events:
            await self.kafka.publish(topic, event, key=event["data"]["order_id"])

    async def orders(self, *events: dict[str, Any]) -> None:
        await self.publish("shop.orders", *events)

    async def payments(self, *events: dict[str, Any]) -> None:
        await self.publish("shop.payments", *events)

    async def commands(self, expected: int) -> list[dict[str, Any]]:
        """Every command the service published so far, once ``expected`` of them arrived."""
        records = await self.kafka.read_all("followup.notifications", expected, timeout_s=15)
        return [json.loads(r.value) for r in records]

    async def sends(self, expected: int) -> list[dict[str, Any]]:
        return [
            c["data"]
            for c in await self.commands(expected)
            if c["type"] == "followup.notification.send"
        ]

    async def wait_for(
        self, probe: Callable[[], Awaitable[Any]], until: Callable[[Any], bool], what: str
    ) -> Any:
        return await eventually(probe, until, what=what)

    async def decisions(self, order_id: str) -> list[tuple[int | None, str, str]]:
        rows = await self.db.fetch(
            "SELECT tier, decision, reason FROM reminder.reminder_history "
            "WHERE order_id = $1 ORDER BY id, step",
            order_id,
        )
        return [(r["tier"], r["decision"], r["reason"]) for r in rows]

    async def decided(self, order_id: str, count: int) -> list[tuple[int | None, str, str]]:
        result: list[tuple[int | None, str, str]] = await eventually(
            lambda: self.decisions(order_id),
            lambda d: len(d) >= count,
            what=f"{count} decisions for {order_id}",
        )
        return result

    async def timers(self, order_id: str) -> list[tuple[str, datetime]]:
        rows = await self.db.fetch(
            "SELECT key, due_at FROM reminder.timers WHERE subject = $1 ORDER BY due_at, key",
            order_id,
        )
        return [(r["key"], r["due_at"]) for r in rows]

    async def timers_settled(self) -> None:
        """Wait until no due timer is left (the timer loop caught up with the clock)."""
        await eventually(
            lambda: self.db.fetchval(
                "SELECT count(*) FROM reminder.timers WHERE due_at <= $1 AND failed_at IS NULL",
                self.clock.now(),
            ),
            lambda n: n == 0,
            what="due timers fired",
        )

    async def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        await self.timers_settled()

    async def metrics(self, app_index: int = 0) -> str:
        transport = httpx.ASGITransport(app=self.apps[app_index])
        async with httpx.AsyncClient(transport=transport, base_url="http://reminder") as client:
            return (await client.get("/metrics")).text

    async def metric(self, series: str, app_index: int = 0) -> float:
        """Sum of the samples whose line starts with ``series`` (name and labels)."""
        text = await self.metrics(app_index)
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series)
        )

    async def metric_reaches(self, series: str, value: float) -> None:
        """Wait for a series to read ``value``. The service counts a batch's decisions just
        after its transaction commits, so a test that saw the rows may read /metrics first."""
        await eventually(lambda: self.metric(series), lambda v: v == value, what=series)


@pytest.fixture
def policy_text() -> str:
    """Override in a test module (or parametrize indirectly) for another policy."""
    return ""


@asynccontextmanager
async def reminder_under_test(
    kafka: Kafka,
    database: str,
    policy_path: Path,
    *,
    replicas: int = 1,
    start: datetime = T0,
    **settings: Any,
) -> AsyncIterator[ReminderUnderTest]:
    clock = ManualClock(start)
    apps = [
        create_app(
            service_settings(
                ReminderSettings, kafka, database, followup_policy_file=policy_path, **settings
            ),
            clock=clock,
        )
        for _ in range(replicas)
    ]
    db = await asyncpg.connect(database)
    try:
        async with running(*apps):
            yield ReminderUnderTest(kafka, clock, db, apps)
    finally:
        await db.close()


@pytest.fixture
async def reminder(
    kafka: Kafka, database: str, tmp_path: Path, policy_text: str
) -> AsyncIterator[ReminderUnderTest]:
    path = tmp_path / "followup.toml"
    path.write_text(policy_text, encoding="utf-8")
    async with reminder_under_test(kafka, database, path) as under_test:
        yield under_test

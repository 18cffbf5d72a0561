"""The after-sales service in this process on a manual clock, against the real broker and
PostgreSQL. What it decides is read back as commands from ``followup.notifications``."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.asgi import AsgiFastStream
from prometheus_client.parser import text_string_to_metric_families

from followup.clock import ManualClock
from services.aftersales.app import create_app
from services.aftersales.settings import AftersalesSettings
from tests.harness import Kafka, eventually, running, service_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
NOTIFICATIONS = "followup.notifications"


class CommandLog:
    """Everything on followup.notifications from the start, decoded."""

    def __init__(self, kafka: Kafka) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap, enable_auto_commit=False, group_id=None
        )
        self._topic = kafka.prefix + NOTIFICATIONS
        self.records: list[dict[str, Any]] = []
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._topic) or set()
        self._partitions = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def drain(self) -> list[dict[str, Any]]:
        """Read up to the end of every partition as it is now; call once the outbox is empty,
        so everything the service decided has been published."""
        ends = await self._consumer.end_offsets(self._partitions)

        async def behind() -> bool:
            positions = [await self._consumer.position(tp) for tp in ends]
            return any(p < end for p, end in zip(positions, ends.values(), strict=True))

        while await behind():
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.records += [
                    {**json.loads(r.value or b"{}"), "_key": (r.key or b"").decode()}
                    for r in records
                ]
        return self.records


@dataclass
class Rig:
    kafka: Kafka
    clock: ManualClock
    db: asyncpg.Connection
    app: AsgiFastStream
    log: CommandLog
    published: set[str] = field(default_factory=set)

    async def publish(self, *events: dict[str, Any], topic: str = "shop.aftersales") -> None:
        for event in events:
            await self.kafka.publish(topic, event, key=event["data"]["order_id"])
            self.published.add(event["id"])

    async def quiet(self, what: str = "the service to settle", timeout_s: float = 20.0) -> None:
        """Every published event processed, no timer due, the outbox drained."""

        async def probe() -> dict[str, int]:
            row = await self.db.fetchrow(
                "SELECT (SELECT count(*) FROM aftersales.inbox WHERE event_id = ANY($1::text[])) "
                "AS seen, (SELECT count(*) FROM aftersales.timers "
                "WHERE due_at <= $2 AND failed_at IS NULL) AS due, "
                "(SELECT count(*) FROM aftersales.outbox) AS outbox",
                sorted(self.published),
                self.clock.now(),
            )
            assert row is not None
            return dict(row)

        await eventually(
            probe,
            lambda r: r["seen"] == len(self.published) and r["due"] == 0 and r["outbox"] == 0,
            what=what,
            timeout_s=timeout_s,
        )

    async def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        await self.quiet(f"timers due by {self.clock.now().isoformat()}")

    async def sends(self, case_id: str | None = None) -> list[dict[str, Any]]:
        """SendNotification commands so far (of one case), in the order they were published."""
        await self.quiet()
        return [
            r["data"]
            for r in await self.log.drain()
            if r["type"] == "followup.notification.send"
            and (case_id is None or r["data"]["case_id"] == case_id)
        ]

    async def cancels(self) -> list[dict[str, Any]]:
        await self.quiet()
        return [
            r["data"] for r in await self.log.drain() if r["type"] == "followup.notification.cancel"
        ]

    async def names(self, case_id: str) -> list[str]:
        return [s["idempotency_key"].rsplit(":", 1)[-1] for s in await self.sends(case_id)]

    async def metric(self, name: str, **labels: str) -> float:
        """A sample of /metrics, summed over the series matching the labels."""
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://aftersales") as http:
            text = (await http.get("/metrics")).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )


async def gauge(rig: "Rig", name: str, expected: float, **labels: str) -> None:
    """Wait for a gauge; telling the loops the time (unchanged) refreshes the gauges at once."""
    rig.clock.set(rig.clock.now())
    await eventually(
        lambda: rig.metric(name, **labels), lambda value: value == expected, what=f"{name}{labels}"
    )


def utc(moment: datetime) -> str:
    """How the service spells a time in a message: ISO 8601 in UTC."""
    return moment.astimezone(UTC).isoformat()


def settings(kafka: Kafka, database: str, **overrides: Any) -> AftersalesSettings:
    return service_settings(AftersalesSettings, kafka, database, **overrides)


@pytest.fixture
async def rig(kafka: Kafka, database: str) -> AsyncIterator[Rig]:
    clock = ManualClock(T0)
    app = create_app(settings(kafka, database), clock=clock)
    log = CommandLog(kafka)
    db = await asyncpg.connect(database)
    await log.start()
    try:
        async with running(app):
            yield Rig(kafka, clock, db, app, log)
    finally:
        await log.stop()
        await db.close()

"""The logistics service in this process on a manual clock, with the commands it publishes
read back from the real broker."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.asgi import AsgiFastStream

from followup.clock import ManualClock
from services.logistics.app import create_app
from services.logistics.settings import LogisticsSettings
from tests.harness import Kafka, eventually, running, service_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # a Monday


@dataclass
class Logistics:
    kafka: Kafka
    clock: ManualClock
    db: asyncpg.Connection
    commands: list[dict[str, Any]] = field(default_factory=list)
    """Every command on followup.notifications, in the order the broker returned them."""
    read_up_to: dict[int, int] = field(default_factory=dict)
    """Next offset the collector will read, per partition."""
    probe: AIOKafkaConsumer | None = None
    apps: list[AsgiFastStream] = field(default_factory=list)

    async def metric(self, series: str) -> float:
        """Sum of a Prometheus series over every replica, read from its /metrics route."""
        total = 0.0
        for app in self.apps:
            text = await _get(app, "/metrics")
            total += sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith(series)
            )
        return total

    async def publish(self, topic: str, *events: dict[str, Any]) -> None:
        for event in events:
            await self.kafka.publish(topic, event, key=event["data"]["order_id"])

    async def ship(self, *events: dict[str, Any]) -> None:
        await self.publish("shop.shipments", *events)

    async def applied(self, count: int) -> None:
        """Wait until ``count`` distinct events (of any topic) were consumed."""
        await eventually(
            lambda: self.db.fetchval("SELECT count(*) FROM logistics.inbox"),
            lambda n: n >= count,
            what=f"{count} events in the inbox",
        )

    async def advance(self, delta: timedelta) -> None:
        """Move the clock and wait until every timer due by then has fired."""
        self.clock.advance(delta)
        await self.timers_settled()

    async def timers_settled(self) -> None:
        await eventually(
            lambda: self.db.fetchval(
                "SELECT count(*) FROM logistics.timers WHERE due_at <= $1", self.clock.now()
            ),
            lambda n: n == 0,
            what="due timers fired",
        )

    async def sent(self, count: int, what: str = "commands") -> list[dict[str, Any]]:
        """Wait until the service decided ``count`` messages in total and all of them reached
        the topic; then there are exactly that many (nothing extra is in flight)."""
        await eventually(
            lambda: self.db.fetchval(
                "SELECT count(*) FROM logistics.notices WHERE idempotency_key IS NOT NULL"
            ),
            lambda n: n >= count,
            what=f"{count} {what} decided",
        )
        await eventually(
            lambda: self.db.fetchval("SELECT count(*) FROM logistics.outbox"),
            lambda n: n == 0,
            what="outbox drained",
        )
        await eventually(self._caught_up, what="every published command read back")
        sends = [c["data"] for c in self.commands if c["type"] == "followup.notification.send"]
        assert len(sends) == count, [c["idempotency_key"] for c in sends]
        return sends

    async def _caught_up(self) -> bool:
        assert self.probe is not None
        topic = self.kafka.prefix + "followup.notifications"
        partitions = [
            TopicPartition(topic, p) for p in self.probe.partitions_for_topic(topic) or ()
        ]
        assert partitions, f"no metadata for {topic}"
        ends = await self.probe.end_offsets(partitions)
        return all(self.read_up_to.get(tp.partition, 0) >= end for tp, end in ends.items())

    def of(self, subject: str) -> list[dict[str, Any]]:
        """Commands about one shipment or order (its id in the idempotency key)."""
        return [
            c["data"]
            for c in self.commands
            if c["type"] == "followup.notification.send"
            and f":{subject}:" in c["data"]["idempotency_key"]
        ]

    async def timer(self, kind: str, key: str) -> datetime | None:
        due: datetime | None = await self.db.fetchval(
            "SELECT due_at FROM logistics.timers WHERE kind = $1 AND key = $2", kind, key
        )
        return due


async def _get(app: AsgiFastStream, path: str) -> str:
    """GET a route of the app's ASGI interface, as an HTTP server would call it."""
    body = bytearray()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        body.extend(message.get("body", b""))

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    return body.decode()


async def _collect(found: Logistics, ready: asyncio.Event) -> None:
    kafka = found.kafka
    consumer = AIOKafkaConsumer(
        kafka.prefix + "followup.notifications",
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    ready.set()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            for partition, records in batch.items():
                found.commands.extend(json.loads(r.value) for r in records)
                found.read_up_to[partition.partition] = records[-1].offset + 1
    finally:
        await consumer.stop()


PolicyFile = Callable[[str], Path]


@pytest.fixture
def policy_file(tmp_path: Path) -> PolicyFile:
    def write(text: str) -> Path:
        path = tmp_path / "followup.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
async def logistics_with(
    kafka: Kafka, database: str, policy_file: PolicyFile
) -> AsyncIterator[Callable[..., Any]]:
    """Start the service with an optional ``[logistics]`` policy and a start time."""
    stack = contextlib.AsyncExitStack()

    async def start(policy: str = "", *, at: datetime = T0, replicas: int = 1) -> Logistics:
        clock = ManualClock(at)
        path = policy_file(policy) if policy else None
        settings = service_settings(LogisticsSettings, kafka, database, followup_policy_file=path)
        apps = [create_app(settings, clock=clock) for _ in range(replicas)]
        await stack.enter_async_context(running(*apps))
        db = await asyncpg.connect(database)
        stack.push_async_callback(db.close)
        found = Logistics(kafka, clock, db, apps=apps)
        ready = asyncio.Event()
        found.probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=None)
        await found.probe.start()
        await found.probe.topics()  # metadata, so the probe knows the partitions
        stack.push_async_callback(found.probe.stop)
        task = asyncio.create_task(_collect(found, ready))

        async def stop_collecting() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop_collecting)
        await ready.wait()
        return found

    async with stack:
        yield start


@pytest.fixture
async def logistics(logistics_with: Callable[..., Any]) -> Logistics:
    started: Logistics = await logistics_with()
    return started

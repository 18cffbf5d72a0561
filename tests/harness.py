"""What integration and e2e tests share: the embedded broker and database, a fresh database
and topic prefix per test, a plain Kafka producer, and polling with a deadline."""

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry

from contracts.codec import ORDER_EVENTS
from contracts.shop import OrderEvent
from contracts.topics import all_topic_names
from followup.consumer import BatchConsumer, DeadLetter, DeadLetters, EventProcessor, PendingBatches
from followup.kafka import committed_offsets, create_topics
from followup.metrics import RuntimeMetrics
from followup.stack.embedded import EmbeddedKafka, EmbeddedPostgres, with_database

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 20.0

# The webhook body of platform-contract.md, "The webhook channel", in its order.
WEBHOOK_BODY_FIELDS = [
    "message_id",
    "idempotency_key",
    "kind",
    "order_id",
    "customer_id",
    "case_id",
    "locale",
    "subject",
    "text",
    "meta",
    "created_at",
]


@contextmanager
def embedded_kafka() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS when set (CI against Apache Kafka), else the embedded broker."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield bootstrap
        return
    broker = EmbeddedKafka()
    try:
        yield broker.start()
    finally:
        broker.stop()


@contextmanager
def embedded_postgres() -> Iterator[str]:
    if dsn := os.environ.get("DATABASE_URL"):
        yield dsn
        return
    server = EmbeddedPostgres()
    try:
        yield server.start()
    finally:
        server.stop()


@asynccontextmanager
async def fresh_database(server_dsn: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield with_database(server_dsn, name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def fresh_topics(bootstrap: str, partitions: int = 3) -> str:
    """A unique topic prefix with every topic of the stack created under it."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await create_topics(bootstrap, [prefix + t for t in all_topic_names()], partitions=partitions)
    return prefix


@dataclass
class Kafka:
    bootstrap: str
    prefix: str
    producer: AIOKafkaProducer

    async def publish(
        self, topic: str, value: bytes | dict[str, Any], key: str | None = None
    ) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self.producer.send_and_wait(
            self.prefix + topic, raw, key=key.encode() if key else None
        )

    async def committed(self, group_id: str, topic: str) -> int:
        return await committed_offsets(self.bootstrap, group_id, self.prefix + topic)

    async def read_all(
        self, topic: str, expected: int, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> list[Any]:
        """Read a topic from the start until ``expected`` records arrived (or time is up)."""
        consumer = AIOKafkaConsumer(
            self.prefix + topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        records: list[Any] = []
        try:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while len(records) < expected and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for partition_records in batch.values():
                    records.extend(partition_records)
        finally:
            await consumer.stop()
        return records


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool] = bool,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until ``until(result)``; fail with the last result at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await probe()
        if until(result):
            return result
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s}s waiting for {what}; last: {result!r}"
            )
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(*apps: AsgiFastStream) -> AsyncIterator[None]:
    """Start apps in this event loop (as uvicorn's lifespan would) and stop them after."""
    started = []
    try:
        for app in apps:
            await app.start()
            started.append(app)
        yield
    finally:
        for app in reversed(started):
            await app.stop()


async def scrape(app: AsgiFastStream, series: str) -> float:
    """The value of one series on the app's /metrics, through its ASGI interface."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        text = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series)
    )


def cloud_event(
    event_type: str, data: dict[str, Any], *, time: datetime, event_id: str | None = None
) -> dict[str, Any]:
    """A CloudEvents envelope as the shop platform writes it: plain JSON, not our models."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "shop-platform/test",
        "type": event_type,
        "time": time.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def order_created(
    order_id: str,
    *,
    at: datetime,
    deadline: datetime,
    customer_id: str = "C-1",
    locale: str = "zh-CN",
    event_id: str | None = None,
    **customer: Any,
) -> dict[str, Any]:
    return cloud_event(
        "shop.order.created",
        {
            "order_id": order_id,
            "customer": {"id": customer_id, "name": "王女士", "locale": locale, **customer},
            "items": [
                {
                    "sku": "COAT-M",
                    "title": "羊毛混纺大衣",
                    "quantity": 1,
                    "unit_price": "599.00",
                    "options": {"size": "M", "color": "藏青"},
                    "stock_left": 3,
                }
            ],
            "total": "599.00",
            "currency": "CNY",
            "created_at": at.isoformat(),
            "pay_deadline": deadline.isoformat(),
        },
        time=at,
        event_id=event_id,
    )


def payment_succeeded(
    order_id: str, *, at: datetime, event_id: str | None = None
) -> dict[str, Any]:
    return cloud_event(
        "shop.payment.succeeded",
        {
            "order_id": order_id,
            "paid_at": at.isoformat(),
            "amount": "599.00",
            "currency": "CNY",
            "payment_id": f"P-{order_id}",
            "method": "alipay",
        },
        time=at,
        event_id=event_id,
    )


def service_settings(settings_class: type[T], kafka: Kafka, database: str, **overrides: Any) -> T:
    """Settings for a service under test: this test's topics and database, fast group joins,
    nothing read from a .env file."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka.bootstrap,
        "kafka_topic_prefix": kafka.prefix,
        "kafka_idempotent_producer": os.environ.get("KAFKA_IDEMPOTENT_PRODUCER", "false") == "true",
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "database_url": database,
        "timer_poll_interval_s": 0.2,
        **overrides,
    }
    return settings_class(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def kafka_for_test(bootstrap: str) -> AsyncIterator[Kafka]:
    prefix = await fresh_topics(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        yield Kafka(bootstrap, prefix, producer)
    finally:
        await producer.stop()


def consumer_record(
    topic: str, key: bytes | None, value: bytes, *, partition: int = 0, offset: int = 0
) -> ConsumerRecord[bytes, bytes]:
    """A record as the consumer hands it over, for tests of a consumer's handler itself."""
    return ConsumerRecord(
        topic, partition, offset, 0, 0, key, value, None, len(key or b""), len(value), ()
    )


class KeptDeadLetters(DeadLetters):
    """Dead letters kept in a list, for tests of a consumer's handler without a broker."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)


def order_consumer(
    pool: asyncpg.Pool,
    process: EventProcessor[OrderEvent],
    *,
    lanes: int = 1,
    retry_budget_s: float = 30.0,
) -> BatchConsumer[OrderEvent]:
    """A consumer of shop.orders records handed to it directly, storing into ``pool``."""
    return BatchConsumer(
        topic="shop.orders",
        decoder=ORDER_EVENTS,
        process=process,
        pool=lambda: pool,
        dead_letters=KeptDeadLetters(),
        metrics=RuntimeMetrics(CollectorRegistry()),
        pending=PendingBatches(),
        lanes=lanes,
        retry_budget_s=retry_budget_s,
    )

"""What every benchmark shares: the embedded broker and PostgreSQL (or the ones the
environment names), a description of the machine, and figures printed one per line."""

import os
import platform
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer

from contracts.topics import all_topic_names
from followup.kafka import create_topics
from followup.settings import RuntimeSettings
from followup.stack.embedded import EmbeddedKafka, EmbeddedPostgres, with_database

S = TypeVar("S", bound=RuntimeSettings)


def machine() -> str:
    """CPU model, core count, memory and Python, for the line every figure is quoted with."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{model}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


@dataclass
class BenchStack:
    bootstrap: str
    dsn: str
    prefix: str

    def settings(self, cls: type[S], **overrides: Any) -> S:
        """A service's settings pointed at this stack (not at ``.env``), quiet logs."""
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.bootstrap,
            "kafka_topic_prefix": self.prefix,
            # The embedded broker refuses idempotent producers (README: KAFKA_IDEMPOTENT_PRODUCER).
            "kafka_idempotent_producer": False,
            "database_url": self.dsn,
            "log_level": "WARNING",
        }
        return cls(_env_file=None, **{**values, **overrides})

    async def producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
        )
        await producer.start()
        return producer

    async def publish_all(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
        """Publish (key, value) pairs as fast as the broker takes them; not part of a figure."""
        producer = await self.producer()
        count = 0
        try:
            pending = []
            for key, value in records:
                pending.append(await producer.send(self.prefix + topic, value, key=key))
                count += 1
                if len(pending) >= 5000:
                    for future in pending:
                        await future
                    pending.clear()
            for future in pending:
                await future
        finally:
            await producer.stop()
        return count


@asynccontextmanager
async def bench_stack(partitions: int = 3) -> AsyncIterator[BenchStack]:
    """KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set, else embedded; fresh topics and DB."""
    kafka = None if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else EmbeddedKafka()
    postgres = None if os.environ.get("DATABASE_URL") else EmbeddedPostgres()
    try:
        bootstrap = kafka.start() if kafka else os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        server_dsn = postgres.start() if postgres else os.environ["DATABASE_URL"]
        prefix = f"b{uuid.uuid4().hex[:8]}."
        await create_topics(
            bootstrap, [prefix + t for t in all_topic_names()], partitions=partitions
        )
        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(server_dsn)
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield BenchStack(bootstrap, with_database(server_dsn, name), prefix)
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await admin.close()
    finally:
        if kafka:
            kafka.stop()
        if postgres:
            postgres.stop()


def report(name: str, value: float, unit: str, conditions: str) -> None:
    """One figure per line: what, how much, and under which conditions."""
    print(f"{name}: {value:,.0f} {unit}  [{conditions}]", flush=True)

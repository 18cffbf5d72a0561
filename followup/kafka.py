"""Kafka plumbing shared by the services: topic names, topic creation, the broker factory."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from followup.settings import RuntimeSettings

log = logging.getLogger(__name__)

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


@dataclass(frozen=True)
class TopicNames:
    """Contract topic names with the deployment's prefix (e.g. ``staging.shop.orders``)."""

    prefix: str = ""

    def __call__(self, topic: str) -> str:
        return f"{self.prefix}{topic}"


def consumer_group(service: str, topic: str) -> str:
    """The consumer group of a service's subscriber to ``topic`` (the prefixed name). The
    prefix is part of it: deployments (or test runs) sharing a cluster under different
    prefixes must not share groups and rebalance each other."""
    return f"followup-{service}-{topic}"


@asynccontextmanager
async def committed_offsets_reader(
    bootstrap: str, group_id: str, topic: str
) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """Read the sum of a group's committed offsets on ``topic`` (what it will not read again)
    as often as needed over one connection, without joining the group, so its running members
    keep their partitions. Each read asks the broker (committed offsets are not cached)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]

        async def read() -> int:
            offsets = [await consumer.committed(tp) for tp in partitions]
            return sum(offset or 0 for offset in offsets)

        yield read
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> int:
    """The committed offsets of ``committed_offsets_reader``, read once."""
    async with committed_offsets_reader(bootstrap, group_id, topic) as read:
        return await read()


def create_broker(
    service: str, settings: RuntimeSettings, bootstrap: str, registry: CollectorRegistry
) -> KafkaBroker:
    return KafkaBroker(
        bootstrap,
        client_id=f"followup-{service}",
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=service)],
        logger=logging.getLogger(f"followup.{service}.kafka"),
        # FastStream logs every batch received; that is debug detail at our volumes.
        log_level=logging.DEBUG,
        graceful_timeout=30.0,
    )


async def create_topics(
    bootstrap: str, names: Iterable[str], *, partitions: int, timeout_s: float = 30.0
) -> None:
    """Create missing topics; existing ones are left as they are."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="followup-admin")
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            await admin.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name in names
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                log.info("topics were created concurrently by another process")
    finally:
        await admin.close()

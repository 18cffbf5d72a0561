"""What every service's ``create_app()`` is built from: one ``ServiceRuntime`` per process.

It owns the broker (with FastStream's Prometheus middleware), the asyncpg pool bound to the
service's schema, migrations at start-up, batch subscribers with dead-lettering and inbox
deduplication, the timer loop, the outbox relay, and the ``/metrics``, ``/healthz`` and
``/readyz`` routes. Services add their handlers and decisions; they never re-implement these.
"""

import asyncio
import gc
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Scope
from faststream.kafka import KafkaMessage
from faststream.message import StreamMessage
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from pydantic import SkipValidation

from contracts.codec import EventDecoder
from contracts.envelope import CloudEvent
from contracts.topics import Topic
from followup.clock import Clock, SystemClock
from followup.consumer import BatchConsumer, DeadLetters, EventProcessor, PendingBatches
from followup.db import create_pool, migrate, service_migrations
from followup.inbox import purge_inbox
from followup.kafka import TopicNames, consumer_group, create_broker
from followup.listen import Listener, table_channel
from followup.loops import Loop, supervise, wait_for_any
from followup.metrics import RuntimeMetrics, merge_families
from followup.outbox import OutboxRelay
from followup.settings import RuntimeSettings
from followup.timers import TimerHandler, TimerLoop

log = logging.getLogger(__name__)

E = TypeVar("E", bound=CloudEvent)

_STATS_INTERVAL_S = 15.0
_HOUSEKEEPING_INTERVAL_S = 3600.0


async def _raw_batch(message: StreamMessage[Any]) -> list[bytes]:
    """Hand the handler raw values: validation happens per record in BatchConsumer, so one
    bad record is dead-lettered instead of failing the whole batch in FastStream's decoder."""
    records: tuple[ConsumerRecord[bytes, bytes], ...] = message.raw_message
    return [r.value or b"" for r in records]


# A batch keeps a thousand decoded events (nested models, no reference cycles) alive at
# once; with the default generation-0 threshold of 700 the cyclic collector runs over and
# over on them and roughly doubles the cost of decoding (bench/: 70 -> 33 us per order).
# Objects alive after start-up are frozen out of collection for the same reason.
_GC_THRESHOLDS = (50_000, 20, 20)


def tune_garbage_collector() -> None:
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


class ServiceRuntime:
    def __init__(
        self,
        name: str,
        settings: RuntimeSettings,
        *,
        service_dir: Path,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.schema = name
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._bootstrap, self._dsn = settings.require_connections()
        self.registry = CollectorRegistry()
        self.metrics = RuntimeMetrics(self.registry)
        self.topics = TopicNames(settings.kafka_topic_prefix)
        self.broker = create_broker(name, settings, self._bootstrap, self.registry)
        self._migrations = service_migrations(self.schema, service_dir)
        self._pool: asyncpg.Pool | None = None
        self._outbox_topics: dict[str, str] = {}
        self._producer: AIOKafkaProducer | None = None
        self._timer_handlers: dict[str, TimerHandler] = {}
        self._loops: dict[str, Loop] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._wakeups: dict[str, Callable[[], None]] = {}
        self._listener = Listener(self._dsn, f"{self.schema}-listen", self._wakeups)
        self._metric_sources: list[Callable[[], Iterable[Metric]]] = []
        self._pending_batches = PendingBatches()
        self.timers = TimerLoop(
            pool=self.pool,
            clock=self.clock,
            handlers=self._timer_handlers,
            metrics=self.metrics,
            batch_size=settings.timer_batch_size,
            poll_interval_s=settings.timer_poll_interval_s,
            max_attempts=settings.timer_max_attempts,
            workers=settings.timer_workers,
            ready=self._pending_batches.drained,
        )
        self.outbox = OutboxRelay(
            schema=self.schema,
            pool=self.pool,
            producer=self.producer,
            topics=self._outbox_topics,
            metrics=self.metrics,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.timer_poll_interval_s,
        )
        self.wake_on_insert("outbox", self.outbox.wake)
        self.wake_on_insert("timers", self.timers.wake)

    # --- wiring used by the services' create_app / handlers ---------------------------------

    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError(f"{self.name}: outbox producer used before start-up")
        return self._producer

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: database pool used before start-up")
        return self._pool

    def consume(
        self,
        topic: Topic,
        decoder: EventDecoder[E],
        process: EventProcessor[E],
        *,
        description: str,
        deduplicate: bool = True,
    ) -> None:
        """Subscribe to ``topic`` in batches; ``process`` gets new events in a transaction.

        ``deduplicate=False`` skips the inbox of event ids, for a ``process`` that is
        idempotent by natural keys on its own (an order is created once, settled once): a
        write per event saved, and no table that grows with every event.
        """
        group_id = consumer_group(self.name, self.topics(topic))
        consumer = BatchConsumer(
            topic=topic.value,
            decoder=decoder,
            process=process,
            pool=self.pool,
            dead_letters=DeadLetters(
                self.broker.publisher(
                    self.topics(topic.dead_letters),
                    title=f"{self.name}:{topic.dead_letters}",
                    description=f"Messages of {topic.value} that {self.name} cannot process: "
                    "the original key and bytes, with dlq-reason, dlq-source-topic/partition/"
                    "offset, dlq-service and dlq-consumer-group headers.",
                    schema=bytes,
                ),
                service=self.name,
                group_id=group_id,
            ),
            metrics=self.metrics,
            pending=self._pending_batches,
            deduplicate=deduplicate,
            lanes=self.settings.kafka_batch_lanes,
        )

        # FastStream documents the channel from the first parameter: one event per Kafka
        # message. It is never validated there; the records come undecoded from the message.
        async def handler(body: Any, message: KafkaMessage) -> None:  # noqa: ARG001
            await consumer.handle(message.raw_message)

        handler.__name__ = f"{self.name}_{topic.name.lower()}"
        handler.__doc__ = description
        handler.__annotations__["body"] = Annotated[decoder.schema, SkipValidation]
        self.broker.subscriber(
            self.topics(topic),
            batch=True,
            group_id=group_id,
            # Commit only after the handler returned, i.e. after the transactions committed;
            # on error rewind, so nothing past unprocessed work is committed.
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            max_records=self.settings.kafka_batch_max_records,
            batch_timeout_ms=self.settings.kafka_batch_timeout_ms,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            decoder=_raw_batch,
            title=f"{self.name}:{topic.value}",
            description=description,
        )(handler)

    def publishes(self, topic: Topic, *, schema: Any, description: str) -> None:
        """Declare a topic this service writes through its outbox. The FastStream publisher
        documents it in the AsyncAPI document; the outbox relay sends with its own producer."""
        self._outbox_topics[topic.value] = self.topics(topic)
        self.broker.publisher(
            self.topics(topic),
            title=f"{self.name}:{topic.value}",
            description=description,
            schema=schema,
        )

    def on_timer(self, kind: str, handler: TimerHandler) -> None:
        self._timer_handlers[kind] = handler

    def wake_on_insert(self, table: str, wake: Callable[[], None]) -> None:
        """Call ``wake`` when a transaction writing ``table`` commits (its trigger NOTIFYs)."""
        self._wakeups[table_channel(self.schema, table)] = wake

    def add_metrics_source(self, source: Callable[[], Iterable[Metric]]) -> None:
        """Metric families of this service's other processes, merged into ``/metrics``."""
        self._metric_sources.append(source)

    def add_loop(self, name: str, loop: Loop) -> None:
        """A background loop started after the broker and stopped before it."""
        self._loops[name] = loop

    # --- lifecycle ---------------------------------------------------------------------------

    async def start_database(self) -> None:
        tune_garbage_collector()
        self._pool = await create_pool(
            self._dsn,
            self.schema,
            size=self.settings.database_pool_size,
            connect_timeout_s=self.settings.database_connect_timeout_s,
        )
        async with self._pool.acquire() as conn:
            applied = await migrate(conn, self.schema, self._migrations)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))

    async def start_loops(self) -> None:
        self._stop.clear()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"followup-{self.name}-outbox",
            acks="all",
            enable_idempotence=self.settings.kafka_idempotent_producer,
            linger_ms=2,
            # The relay fills record batches itself; at aiokafka's default of 16 KiB a batch
            # holds about a dozen commands, and sending one per dozen cost more than all else
            # the relay does (bench/: 18-26 against 39-40 us per message). Half the broker's
            # default limit per batch (1 MiB).
            max_batch_size=512 * 1024,
        )
        await self._producer.start()
        loops: dict[str, Loop] = {"outbox": self.outbox.run, "stats": self._stats, **self._loops}
        if self._timer_handlers:
            loops["timers"] = self.timers.run
        loops["housekeeping"] = self._housekeeping
        loops["listen"] = self._listener.keep_listening
        await self._listener.open()  # before the loops, so work committed from now on wakes them
        self._tasks = [
            asyncio.create_task(supervise(name, loop, self._stop, self.metrics), name=name)
            for name, loop in loops.items()
        ]

    async def stop_loops(self) -> None:
        self._stop.set()
        if self._tasks:
            _, still_running = await asyncio.wait(self._tasks, timeout=10)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._listener.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def stop_database(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _stats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self.pool().acquire() as conn:
                    rows = await conn.fetch(
                        "SELECT kind, count(*) FILTER (WHERE failed_at IS NULL) AS pending, "
                        "count(*) FILTER (WHERE failed_at IS NOT NULL) AS parked "
                        "FROM timers GROUP BY kind"
                    )
                    outbox = await conn.fetchval("SELECT count(*) FROM outbox")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("stats unavailable: %s", exc)
            else:
                for kind in self._timer_handlers:
                    self.metrics.timers_pending.labels(kind).set(0)
                    self.metrics.timers_parked.labels(kind).set(0)
                for row in rows:
                    self.metrics.timers_pending.labels(row["kind"]).set(row["pending"])
                    self.metrics.timers_parked.labels(row["kind"]).set(row["parked"])
                self.metrics.outbox_pending.set(outbox)
            await wait_for_any(stop, _STATS_INTERVAL_S)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self.pool().acquire() as conn:
                    purged = await purge_inbox(conn, self.settings.inbox_retention_days)
                if purged:
                    log.info(
                        "forgot %d event ids older than %d days",
                        purged,
                        self.settings.inbox_retention_days,
                    )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("inbox purge skipped: %s", exc)
            await wait_for_any(stop, _HOUSEKEEPING_INTERVAL_S)

    # --- HTTP --------------------------------------------------------------------------------

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        checks["kafka"] = "ok" if await self.broker.ping(timeout=2.0) else "unreachable"
        try:
            async with asyncio.timeout(2.0):
                await self.pool().fetchval("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        dead = [t.get_name() for t in self._tasks if t.done()]
        checks["loops"] = "ok" if not dead else f"stopped: {', '.join(dead)}"
        return checks

    def collect(self) -> list[Metric]:
        """What ``/metrics`` shows: this process's metrics and its other processes'."""
        return merge_families(
            [self.registry.collect(), *(source() for source in self._metric_sources)]
        )

    def routes(self) -> list[tuple[str, ASGIApp]]:
        @get(include_in_schema=False)
        async def metrics(scope: Scope) -> AsgiResponse:  # noqa: ARG001
            exposed = self if self._metric_sources else self.registry
            return AsgiResponse(
                generate_latest(exposed), 200, {"content-type": CONTENT_TYPE_LATEST}
            )

        @get(include_in_schema=False)
        async def healthz(scope: Scope) -> AsgiResponse:  # noqa: ARG001
            return AsgiResponse(b'{"status":"ok"}', 200, {"content-type": "application/json"})

        @get(include_in_schema=False)
        async def readyz(scope: Scope) -> AsgiResponse:  # noqa: ARG001
            checks = await self.readiness()
            ready = all(v == "ok" for v in checks.values())
            body = json.dumps({"status": "ready" if ready else "not ready", **checks}).encode()
            return AsgiResponse(body, 200 if ready else 503, {"content-type": "application/json"})

        return [("/metrics", metrics), ("/healthz", healthz), ("/readyz", readyz)]

    def app(self, extra_routes: Sequence[tuple[str, ASGIApp]] = ()) -> AsgiFastStream:
        return AsgiFastStream(
            self.broker,
            asgi_routes=[*self.routes(), *extra_routes],
            logger=logging.getLogger(f"followup.{self.name}"),
            on_startup=[self.start_database],
            after_startup=[self.start_loops],
            on_shutdown=[self.stop_loops],
            after_shutdown=[self.stop_database],
        )

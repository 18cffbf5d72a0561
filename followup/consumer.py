"""At-least-once batch consumption: validate, dead-letter the bad, deduplicate, store.

The Kafka offset of a batch is committed by FastStream only after ``handle`` returns, that is
after the transactions that recorded every effect of the batch have committed. A retryable
failure raises instead, so the subscriber's NACK rewinds the partitions and the same records
come back (architecture.md: "Delivery semantics").

A batch is split by record key into lanes, each decoded and stored in its own transaction,
side by side: while one lane waits for PostgreSQL, the next is decoded and decided, so the
service's process and the database work at the same time instead of taking turns. Records
with the same key (the same order, the same parcel) stay in one lane, in their order, which
is all the ordering Kafka itself gives across partitions; a lane is a partition in small.
"""

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import asyncpg
from aiokafka import ConsumerRecord
from faststream.kafka.publisher import DefaultPublisher

from contracts.codec import EventDecoder, InvalidEvent
from contracts.envelope import CloudEvent
from followup.db import Connection, is_transient
from followup.inbox import claim_new_event_ids
from followup.logs import event_context
from followup.metrics import RuntimeMetrics
from followup.timers import AfterCommit

log = logging.getLogger(__name__)

E = TypeVar("E", bound=CloudEvent)

EventProcessor = Callable[[Connection, Sequence[E]], Awaitable[AfterCommit | None]]
"""Applies new (never seen) events inside the caller's transaction; may return an
``AfterCommit`` to run once that transaction committed (a retried batch runs it once)."""

_MAX_REASON_CHARS = 2000


class PendingBatches:
    """Counts fetched batches that could not be stored yet (the database is away).

    The timer loop waits while any is pending: after an outage the payment that arrived
    during it must be stored before the reminder timer that fell due during it fires, or the
    customer gets a reminder for an order they have already paid."""

    def __init__(self) -> None:
        self._count = 0
        self.drained = asyncio.Event()
        self.drained.set()

    def enter(self) -> None:
        self._count += 1
        self.drained.clear()

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self.drained.set()


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    reason: str


class DeadLetters:
    """Publishes unprocessable records to ``<topic>.dlq`` with the original key and bytes."""

    def __init__(self, publisher: DefaultPublisher, *, service: str, group_id: str) -> None:
        self._publisher = publisher
        self._service = service
        self._group_id = group_id

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        pending = []
        for letter in letters:
            record = letter.record
            log.warning(
                "dead-lettered %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                letter.reason,
                extra={"event_id": _event_id_of(record)},
            )
            pending.append(
                await self._publisher.publish(
                    record.value or b"",
                    key=record.key,
                    headers={
                        "dlq-reason": letter.reason[:_MAX_REASON_CHARS],
                        "dlq-source-topic": record.topic,
                        "dlq-source-partition": str(record.partition),
                        "dlq-source-offset": str(record.offset),
                        "dlq-service": self._service,
                        "dlq-consumer-group": self._group_id,
                        "dlq-at": datetime.now(UTC).isoformat(),
                    },
                    no_confirm=True,
                )
            )
        await asyncio.gather(*pending)


def _event_id_of(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """Best effort, for the log line of a record that failed validation."""
    try:
        value = json.loads(record.value or b"")
    except ValueError:
        return None
    event_id = value.get("id") if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) else None


class BatchConsumer(Generic[E]):
    def __init__(
        self,
        *,
        topic: str,
        decoder: EventDecoder[E],
        process: EventProcessor[E],
        pool: Callable[[], asyncpg.Pool],
        dead_letters: DeadLetters,
        metrics: RuntimeMetrics,
        pending: PendingBatches,
        deduplicate: bool = True,
        lanes: int = 1,
        retry_budget_s: float = 30.0,
    ) -> None:
        self._topic = topic
        self._decoder = decoder
        self._process = process
        self._pool = pool
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._pending = pending
        self._deduplicate = deduplicate
        self._lanes = lanes
        self._retry_budget_s = retry_budget_s

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        if self._lanes == 1 or len(records) == 1:
            await self._handle_lane(records)
            return
        lanes: list[list[ConsumerRecord[bytes, bytes]]] = [[] for _ in range(self._lanes)]
        for record in records:
            lanes[zlib.crc32(record.key or b"") % self._lanes].append(record)
        # Every lane runs to its end even when another fails: what committed stays committed
        # (a redelivery finds it done), and the batch is not handed back while a lane is still
        # writing part of it.
        outcomes = await asyncio.gather(
            *(self._handle_lane(lane) for lane in lanes if lane), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _handle_lane(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        received: list[tuple[ConsumerRecord[bytes, bytes], E]] = []
        invalid: list[DeadLetter] = []
        for record in records:
            try:
                received.append((record, self._decoder.decode(record.value)))
            except InvalidEvent as exc:
                invalid.append(DeadLetter(record, exc.reason))
        if invalid:
            await self._dead_letters.publish(invalid)
            self._metrics.events.labels(self._topic, "dead_lettered").inc(len(invalid))
        if received:
            await self._store_with_retry(received)

    async def _store_with_retry(
        self, received: list[tuple[ConsumerRecord[bytes, bytes], E]]
    ) -> None:
        deadline = time.monotonic() + self._retry_budget_s
        delay = 0.2
        waiting = False
        try:
            while True:
                try:
                    await self._store(received)
                except Exception as exc:
                    if not is_transient(exc):
                        log.warning("batch failed, storing its events one by one: %r", exc)
                        await self._store_one_by_one(received)
                        return
                    self._metrics.transient_errors.labels("consumer").inc()
                    if time.monotonic() + delay > deadline:
                        # Give the batch back uncommitted; the subscriber rewinds and
                        # refetches it.
                        raise
                    if not waiting:
                        waiting = True
                        self._pending.enter()
                        self._metrics.batches_waiting.labels(self._topic).inc()
                    log.warning(
                        "cannot store batch of %s yet, retrying in %.1fs: %s",
                        self._topic,
                        delay,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                else:
                    return
        finally:
            if waiting:
                self._pending.leave()
                self._metrics.batches_waiting.labels(self._topic).dec()

    async def _store(self, received: Sequence[tuple[ConsumerRecord[bytes, bytes], E]]) -> None:
        started = time.perf_counter()
        after_commit: AfterCommit | None = None
        async with self._pool().acquire() as conn, conn.transaction():
            if self._deduplicate:
                fresh = await claim_new_event_ids(conn, [event.id for _, event in received])
                new: list[E] = []
                for _, event in received:
                    if event.id in fresh:
                        fresh.discard(event.id)
                        new.append(event)
            else:
                new = [event for _, event in received]
            if new:
                after_commit = await self._process(conn, new)
        if after_commit is not None:
            after_commit()
        self._metrics.batch_seconds.labels(self._topic).observe(time.perf_counter() - started)
        self._metrics.events.labels(self._topic, "processed").inc(len(new))
        if duplicates := len(received) - len(new):
            self._metrics.events.labels(self._topic, "duplicate").inc(duplicates)

    async def _store_one_by_one(
        self, received: Sequence[tuple[ConsumerRecord[bytes, bytes], E]]
    ) -> None:
        for record, event in received:
            with event_context(event.id):
                try:
                    await self._store([(record, event)])
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    log.exception("event cannot be processed; dead-lettering it")
                    await self._dead_letters.publish(
                        [DeadLetter(record, f"processing failed: {exc!r}")]
                    )
                    self._metrics.events.labels(self._topic, "dead_lettered").inc()

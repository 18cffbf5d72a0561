"""Durable timers: due times as rows, claimed with SKIP LOCKED by any number of replicas.

A claimed timer is deleted in the same transaction in which its handler records the effect
(state change, outbox message), so a timer fires at most once per effect, and a crash before
commit leaves it due for the next claim.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

import asyncpg

from followup.clock import Clock
from followup.db import Connection, batch_rows, is_transient
from followup.loops import wait_for_any
from followup.metrics import RuntimeMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timer:
    kind: str
    """What fires; selects the handler (e.g. ``unpaid_reminder``)."""
    key: str
    """Unique within the kind; scheduling the same key again moves the timer."""
    subject: str
    """What the timer is about (order, shipment, case id), to cancel all of its timers."""
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DueTimer(Timer):
    attempts: int = 0


AfterCommit = Callable[[], None]
"""What a handler wants done once its transaction committed (e.g. count what it decided)."""

TimerHandler = Callable[[Connection, Sequence[DueTimer]], Awaitable[AfterCommit | None]]
"""Handles due timers inside the claim's transaction; may return an ``AfterCommit``."""


async def schedule_timers(
    conn: Connection, timers: Sequence[Timer], *, replace: bool = True
) -> None:
    """Insert timers; an existing (kind, key) is moved when ``replace``, else left alone."""
    if not timers:
        return
    conflict = (
        "DO UPDATE SET due_at = EXCLUDED.due_at, payload = EXCLUDED.payload, subject = "
        "EXCLUDED.subject, attempts = 0, last_error = NULL, failed_at = NULL"
        if replace
        else "DO NOTHING"
    )
    # One row per (kind, key), the last scheduled winning; sorted so that concurrent batches
    # lock rows in the same order and cannot deadlock.
    latest = {(t.kind, t.key): t for t in timers}
    ordered = [latest[k] for k in sorted(latest)]
    await conn.execute(
        "INSERT INTO timers (kind, key, subject, due_at, payload) "
        "SELECT r->>0, r->>1, r->>2, (r->>3)::timestamptz, r->4 "
        "FROM jsonb_array_elements($1::text::jsonb) AS r "
        f"ON CONFLICT (kind, key) {conflict}",
        batch_rows((t.kind, t.key, t.subject, t.due_at, dict(t.payload)) for t in ordered),
    )


async def cancel_timers(conn: Connection, kind: str, keys: Sequence[str]) -> int:
    result = await conn.execute(
        "DELETE FROM timers WHERE kind = $1 AND key = ANY($2::text[])", kind, list(keys)
    )
    return int(result.split()[-1])


async def cancel_timers_of(conn: Connection, subjects: Sequence[str], kinds: Sequence[str]) -> int:
    """Delete every timer of these kinds about these subjects (e.g. all reminders of an order)."""
    result = await conn.execute(
        "DELETE FROM timers WHERE subject = ANY($1::text[]) AND kind = ANY($2::text[])",
        list(subjects),
        list(kinds),
    )
    return int(result.split()[-1])


async def pending_timers_of(
    conn: Connection, kind: str, subjects: Sequence[str], *, due_before: datetime
) -> list[DueTimer]:
    """Live timers of these subjects due before a time, locked until commit so they can be
    moved or cancelled; timers another transaction is firing right now are skipped."""
    rows = await conn.fetch(
        "SELECT kind, key, subject, due_at, payload, attempts FROM timers "
        "WHERE kind = $1 AND subject = ANY($2::text[]) AND due_at < $3 AND failed_at IS NULL "
        "ORDER BY kind, key FOR UPDATE SKIP LOCKED",
        kind,
        list(subjects),
        due_before,
    )
    return [DueTimer(**dict(r)) for r in rows]


# A function (runtime migration 0002) that keeps the claim on the due-time index; it returns
# the columns in the order of DueTimer's fields.
_CLAIM = "SELECT * FROM claim_due_timers($1, $2)"


class TimerLoop:
    """Fires due timers: wakes on NOTIFY from the timers table, on the clock jumping (tests),
    and at least every ``poll_interval_s``; sleeps no longer than until the next due time."""

    def __init__(
        self,
        *,
        pool: Callable[[], asyncpg.Pool],
        clock: Clock,
        handlers: Mapping[str, TimerHandler],
        metrics: RuntimeMetrics,
        batch_size: int,
        poll_interval_s: float,
        max_attempts: int,
        ready: asyncio.Event | None = None,
        workers: int = 1,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._handlers = handlers
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._max_attempts = max_attempts
        self._ready = ready
        self._workers = workers
        self._wakeup = asyncio.Event()
        clock.on_change(self.wake)

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """``workers`` claim loops side by side: while one batch waits for PostgreSQL the
        next is decided, and SKIP LOCKED keeps them (and other replicas) apart."""
        await asyncio.gather(*(self._claim_loop(stop) for _ in range(self._workers)))

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            self._wakeup.clear()
            if self._ready is not None and not self._ready.is_set():
                # Events already fetched are stored before any timer fires (PendingBatches).
                await wait_for_any(stop, self._poll_interval_s, self._ready)
                continue
            try:
                while await self.fire_due() == self._batch_size and not stop.is_set():
                    pass
                wait_s = await self._seconds_until_next_due()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._metrics.transient_errors.labels("timers").inc()
                log.warning("timer loop waiting %.1fs: %s", delay, exc)
                await wait_for_any(stop, delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.1
            await wait_for_any(stop, wait_s, self._wakeup)

    async def _seconds_until_next_due(self) -> float:
        async with self._pool().acquire() as conn:
            next_due: datetime | None = await conn.fetchval(
                "SELECT min(due_at) FROM timers WHERE failed_at IS NULL"
            )
        if next_due is None:
            return self._poll_interval_s
        return max(0.0, min(self._poll_interval_s, (next_due - self._clock.now()).total_seconds()))

    async def fire_due(self) -> int:
        """Claim and handle one batch of due timers; returns how many were claimed."""
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                claimed = await self._claim(conn)
                after_commit = await self._dispatch(conn, claimed)
        except Exception as exc:
            if is_transient(exc):
                raise
            # Something in the batch is broken: retry one by one so only the bad one waits.
            log.warning("timer batch failed, retrying timers one by one: %r", exc)
            return await self._fire_one_by_one()
        _run(after_commit)
        self._observe(claimed)
        return len(claimed)

    async def _claim(self, conn: Connection, limit: int | None = None) -> list[DueTimer]:
        rows = await conn.fetch(_CLAIM, self._clock.now(), limit or self._batch_size)
        return [DueTimer(*r) for r in rows]

    async def _dispatch(self, conn: Connection, claimed: Sequence[DueTimer]) -> list[AfterCommit]:
        after_commit: list[AfterCommit] = []
        for kind, group in groupby(sorted(claimed, key=lambda t: t.kind), key=lambda t: t.kind):
            handler = self._handlers.get(kind)
            if handler is None:
                raise LookupError(f"no handler for timer kind {kind!r}")
            if (after := await handler(conn, list(group))) is not None:
                after_commit.append(after)
        return after_commit

    async def _fire_one_by_one(self) -> int:
        fired = 0
        for _ in range(self._batch_size):
            claimed: list[DueTimer] = []
            async with self._pool().acquire() as conn:
                try:
                    async with conn.transaction():
                        claimed = await self._claim(conn, limit=1)
                        if not claimed:
                            return fired
                        after_commit = await self._dispatch(conn, claimed)
                except Exception as exc:
                    if is_transient(exc) or not claimed:
                        raise
                    await self._record_failure(conn, claimed[0], exc)
                else:
                    _run(after_commit)
                    self._observe(claimed)
                    fired += 1
        return fired

    async def _record_failure(self, conn: Connection, timer: DueTimer, exc: Exception) -> None:
        attempts = timer.attempts + 1
        parked = attempts >= self._max_attempts
        retry_at = self._clock.now() + timedelta(seconds=min(2**attempts, 3600))
        self._metrics.timer_failures.labels(timer.kind).inc()
        log.error(
            "timer %s/%s failed (attempt %d)%s: %r",
            timer.kind,
            timer.key,
            attempts,
            ", parked for inspection" if parked else "",
            exc,
        )
        await conn.execute(
            "UPDATE timers SET attempts = $3, last_error = $4, due_at = $5, failed_at = $6 "
            "WHERE kind = $1 AND key = $2",
            timer.kind,
            timer.key,
            attempts,
            repr(exc)[:2000],
            retry_at,
            self._clock.now() if parked else None,
        )

    def _observe(self, claimed: Sequence[DueTimer]) -> None:
        now = self._clock.now()
        # One label lookup per kind and batch: at thousands of timers a second the lookups
        # cost more than the observations.
        for kind, group in groupby(sorted(claimed, key=lambda t: t.kind), key=lambda t: t.kind):
            due = [timer.due_at for timer in group]
            self._metrics.timers_fired.labels(kind).inc(len(due))
            lateness = self._metrics.timer_lateness.labels(kind)
            for due_at in due:
                lateness.observe(max(0.0, (now - due_at).total_seconds()))


def _run(after_commit: Sequence[AfterCommit]) -> None:
    for action in after_commit:
        action()

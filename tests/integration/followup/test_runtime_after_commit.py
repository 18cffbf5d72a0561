"""Runtime additions used by the reminder: work done only after a transaction committed, and
pending timers looked up without waiting for the ones another replica is firing."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from followup.clock import ManualClock
from followup.db import Connection, is_transient
from followup.metrics import RuntimeMetrics
from followup.timers import (
    AfterCommit,
    DueTimer,
    Timer,
    TimerLoop,
    pending_timers_of,
    schedule_timers,
)
from tests.harness import consumer_record, order_consumer, order_created

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


async def test_timer_handlers_work_after_commit_only_when_the_batch_committed(
    pool: asyncpg.Pool,
) -> None:
    clock = ManualClock(T0)
    seen: list[str] = []

    async def remember(conn: Connection, timers: Sequence[DueTimer]) -> AfterCommit:
        keys = [t.key for t in timers]
        if "poison" in keys:
            raise ValueError("this batch cannot be handled")

        def committed() -> None:
            seen.extend(keys)

        return committed

    loop = TimerLoop(
        pool=lambda: pool,
        clock=clock,
        handlers={"k": remember},
        metrics=RuntimeMetrics(CollectorRegistry()),
        batch_size=10,
        poll_interval_s=0.1,
        max_attempts=3,
    )
    async with pool.acquire() as conn:
        await schedule_timers(
            conn,
            [
                Timer("k", "a", "s", T0),
                Timer("k", "poison", "s", T0),
                Timer("k", "b", "s", T0 + timedelta(minutes=1)),
            ],
        )
    # The batch of two fails as a whole (nothing counted), then one by one: "a" commits.
    assert await loop.fire_due() == 1
    assert seen == ["a"]
    clock.advance(timedelta(minutes=1))
    assert await loop.fire_due() == 1
    assert seen == ["a", "b"]
    async with pool.acquire() as conn:
        # Retried with backoff, once per firing, never lost.
        assert await conn.fetchval("SELECT attempts FROM timers WHERE key = 'poison'") == 2


async def test_pending_timers_skip_those_another_transaction_holds(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await schedule_timers(
            conn,
            [
                Timer("k", "o1:1", "o1", T0),
                Timer("k", "o2:1", "o2", T0),
                Timer("k", "o2:2", "o2", T0 + timedelta(hours=5)),
                Timer("other", "o2:x", "o2", T0),
            ],
        )
    async with pool.acquire() as firing, firing.transaction():
        # Another replica is firing o1's timer right now.
        await firing.execute("SELECT * FROM timers WHERE key = 'o1:1' FOR UPDATE")
        async with pool.acquire() as conn, conn.transaction():
            pending = await pending_timers_of(
                conn, "k", ["o1", "o2"], due_before=T0 + timedelta(hours=1)
            )
    assert [(t.key, t.subject, t.due_at) for t in pending] == [("o2:1", "o2", T0)]


async def test_consumed_batches_work_after_commit_once(pool: asyncpg.Pool) -> None:
    visible_at_commit: list[int] = []

    async def process(conn: Connection, events: Sequence[Any]) -> AfterCommit:
        def committed() -> None:
            visible_at_commit.append(len(events))

        return committed

    consumer = order_consumer(pool, process)
    event = order_created("O-1", at=T0, deadline=T0 + timedelta(hours=1), event_id="e-1")
    record = consumer_record("shop.orders", b"O-1", json.dumps(event).encode())
    await consumer.handle([record, record])
    await consumer.handle([record])  # redelivered: a duplicate, nothing new to count
    assert visible_at_commit == [1]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox") == 1


def test_a_database_refusing_connections_is_a_transient_failure() -> None:
    refused = asyncpg.exceptions.ObjectNotInPrerequisiteStateError(
        'database "shop" is not currently accepting connections'
    )
    assert is_transient(refused)
    assert not is_transient(asyncpg.exceptions.UniqueViolationError("duplicate key"))

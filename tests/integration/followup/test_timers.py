"""Durable timers on a real PostgreSQL: replicas share the work without firing anything
twice, and a timer whose handler keeps failing backs off and is parked, not retried forever."""

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from followup.clock import ManualClock
from followup.db import Connection
from followup.metrics import RuntimeMetrics
from followup.timers import (
    DueTimer,
    Timer,
    TimerHandler,
    TimerLoop,
    cancel_timers_of,
    schedule_timers,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def timer_loop(
    pool: asyncpg.Pool, clock: ManualClock, handler: TimerHandler, *, batch_size: int = 100
) -> TimerLoop:
    return TimerLoop(
        pool=lambda: pool,
        clock=clock,
        handlers={"check": handler},
        metrics=RuntimeMetrics(CollectorRegistry()),
        batch_size=batch_size,
        poll_interval_s=0.05,
        max_attempts=3,
    )


async def test_two_replicas_fire_every_timer_exactly_once(pool: asyncpg.Pool) -> None:
    clock = ManualClock(T0)
    fired: Counter[str] = Counter()

    async def handler(conn: Connection, timers: Sequence[DueTimer]) -> None:
        await asyncio.sleep(0)  # let the other replica interleave
        fired.update(t.key for t in timers)

    async with pool.acquire() as conn:
        await schedule_timers(
            conn,
            [Timer("check", f"k{n}", f"s{n}", T0 + timedelta(seconds=n % 10)) for n in range(1000)],
        )
    replicas = [timer_loop(pool, clock, handler), timer_loop(pool, clock, handler)]
    clock.advance(timedelta(seconds=10))
    counts = await asyncio.gather(*(_drain(r) for r in replicas))

    assert sum(counts) == 1000
    assert all(c > 0 for c in counts), f"one replica did all the work: {counts}"
    assert len(fired) == 1000
    assert set(fired.values()) == {1}
    assert await pool.fetchval("SELECT count(*) FROM timers") == 0


async def _drain(loop: TimerLoop) -> int:
    total = 0
    while fired := await loop.fire_due():
        total += fired
    return total


async def test_not_yet_due_timers_wait_and_rescheduling_moves_them(pool: asyncpg.Pool) -> None:
    clock = ManualClock(T0)
    fired: list[str] = []

    async def handler(conn: Connection, timers: Sequence[DueTimer]) -> None:
        fired.extend(t.key for t in timers)

    loop = timer_loop(pool, clock, handler)
    async with pool.acquire() as conn:
        await schedule_timers(conn, [Timer("check", "a", "s", T0 + timedelta(minutes=5))])
        await schedule_timers(conn, [Timer("check", "a", "s", T0 + timedelta(minutes=30))])  # moved
        await schedule_timers(
            conn, [Timer("check", "a", "s", T0 + timedelta(minutes=1))], replace=False
        )  # kept
        await schedule_timers(conn, [Timer("check", "b", "gone", T0)])
        await cancel_timers_of(conn, ["gone"], ["check"])
    clock.advance(timedelta(minutes=29))
    assert await loop.fire_due() == 0
    clock.advance(timedelta(minutes=1))
    assert await loop.fire_due() == 1
    assert fired == ["a"]


async def test_a_failing_timer_backs_off_and_is_parked_without_blocking_others(
    pool: asyncpg.Pool,
) -> None:
    clock = ManualClock(T0)
    fired: list[str] = []

    async def handler(conn: Connection, timers: Sequence[DueTimer]) -> None:
        for timer in timers:
            if timer.key == "poison":
                raise ValueError("cannot handle this one")
        fired.extend(t.key for t in timers)

    loop = timer_loop(pool, clock, handler)
    async with pool.acquire() as conn:
        await schedule_timers(conn, [Timer("check", k, k, T0) for k in ("a", "poison", "b")])
    assert await loop.fire_due() == 2
    assert sorted(fired) == ["a", "b"]

    failed_at = T0
    for attempt in (1, 2):
        row = await pool.fetchrow(
            "SELECT attempts, due_at, failed_at, last_error FROM timers WHERE key = 'poison'"
        )
        assert row is not None
        assert row["attempts"] == attempt
        assert row["failed_at"] is None
        assert "cannot handle this one" in row["last_error"]
        assert row["due_at"] - failed_at == timedelta(seconds=2**attempt)  # exponential backoff
        failed_at = clock.set(row["due_at"])
        await loop.fire_due()

    parked = await pool.fetchrow("SELECT attempts, failed_at FROM timers WHERE key = 'poison'")
    assert parked is not None
    assert parked["attempts"] == 3
    assert parked["failed_at"] is not None
    clock.advance(timedelta(days=1))
    assert await loop.fire_due() == 0  # parked: kept for a person, never claimed again

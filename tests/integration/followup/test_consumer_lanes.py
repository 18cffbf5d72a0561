"""A consumed batch is stored in lanes split by record key: side by side, each key's events in
one lane and in their order, and a lane that fails hands the whole batch back only after the
others have finished, without losing or repeating anything."""

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from contracts.shop import OrderEvent
from followup.db import Connection
from tests.harness import consumer_record, order_consumer, order_created

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
LANES = 3


def records(keys: int, per_key: int) -> list[ConsumerRecord[bytes, bytes]]:
    """``per_key`` events for each of ``keys`` orders, interleaved as a partition holds them."""
    batch: list[ConsumerRecord[bytes, bytes]] = []
    for n in range(per_key):
        for k in range(keys):
            event = order_created(
                f"O-{k}", at=T0, deadline=T0 + timedelta(hours=1), event_id=f"e-{k}-{n}"
            )
            batch.append(
                consumer_record(
                    "shop.orders", f"O-{k}".encode(), json.dumps(event).encode(), offset=len(batch)
                )
            )
    return batch


async def applied(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT event_id, order_id, tx FROM applied ORDER BY seq")


async def record_applied(conn: Connection, events: Sequence[OrderEvent]) -> None:
    await conn.executemany(
        "INSERT INTO applied (event_id, order_id, tx) VALUES ($1, $2, txid_current())",
        [(e.id, e.data.order_id) for e in events],
    )


@pytest.fixture
async def applied_table(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE applied (seq bigserial, event_id text, order_id text, tx bigint)"
        )


@pytest.mark.usefixtures("applied_table")
async def test_lanes_run_side_by_side_and_keep_each_keys_events_together_in_order(
    pool: asyncpg.Pool,
) -> None:
    # Every lane waits here until all of them have reached it: lanes taken one after the
    # other would never get past it.
    all_lanes_in = asyncio.Barrier(LANES)

    async def process(conn: Connection, events: Sequence[OrderEvent]) -> None:
        await asyncio.wait_for(all_lanes_in.wait(), 10)
        await record_applied(conn, events)

    batch = records(keys=40, per_key=3)
    await order_consumer(pool, process, lanes=LANES).handle(batch)

    rows = await applied(pool)
    assert sorted(r["event_id"] for r in rows) == sorted(
        f"e-{k}-{n}" for k in range(40) for n in range(3)
    )
    assert len({r["tx"] for r in rows}) == LANES
    for k in range(40):
        of_order = [r for r in rows if r["order_id"] == f"O-{k}"]
        assert [r["event_id"] for r in of_order] == [f"e-{k}-{n}" for n in range(3)]
        assert len({r["tx"] for r in of_order}) == 1


@pytest.mark.usefixtures("applied_table")
async def test_a_failing_lane_hands_the_batch_back_and_the_redelivery_completes_it(
    pool: asyncpg.Pool,
) -> None:
    database_away_for = {"O-7"}

    async def process(conn: Connection, events: Sequence[OrderEvent]) -> None:
        if database_away_for & {e.data.order_id for e in events}:
            raise ConnectionRefusedError("PostgreSQL is restarting")
        await record_applied(conn, events)

    consumer = order_consumer(pool, process, lanes=LANES, retry_budget_s=0)
    batch = records(keys=40, per_key=2)
    with pytest.raises(ConnectionRefusedError):
        await consumer.handle(batch)
    # The other lanes committed; the failed one left nothing behind.
    committed = {r["order_id"] for r in await applied(pool)}
    assert committed
    assert "O-7" not in committed
    assert len(committed) < 40

    database_away_for.clear()
    await consumer.handle(batch)  # the subscriber rewound: the same records again
    rows = await applied(pool)
    assert sorted(r["event_id"] for r in rows) == sorted(
        f"e-{k}-{n}" for k in range(40) for n in range(2)
    )

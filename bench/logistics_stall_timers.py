"""Stall checks on time with 1,000,000 open shipments (goal: p99 lateness <= 1 s), without
scanning the open shipments.

Loads one million open shipments and their check timers straight into PostgreSQL (COPY, the
shape the service itself writes), most due days ahead and ``--due`` of them coming due
during a one-minute window; then starts one logistics service in this process and measures,
for every stall notice, how long after its due time the decision was taken (``decided_at``
against last scan + threshold, both recorded with the notice). It also reports how many
sequential scans PostgreSQL made of the shipments and timers tables meanwhile.

    .venv/bin/python -m bench.logistics_stall_timers [--open 1000000] [--due 20000]
"""

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.environment import bench_stack, machine, report
from followup.db import migrate, service_migrations
from services.logistics.app import create_app
from services.logistics.settings import LogisticsSettings

STALLED_AFTER = timedelta(hours=24)  # express, the default policy
SERVICE_DIR = Path(__file__).resolve().parents[1] / "services" / "logistics"


async def load(dsn: str, open_shipments: int, due: int, window: tuple[datetime, float]) -> None:
    start, seconds = window
    rng = random.Random(11)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, "logistics", service_migrations("logistics", SERVICE_DIR))
        dues = [start + timedelta(seconds=rng.uniform(0, seconds)) for _ in range(due)]
        dues += [start + timedelta(days=rng.uniform(1, 5)) for _ in range(open_shipments - due)]
        shipments = []
        timers = []
        for n, due_at in enumerate(dues):
            last_scan = due_at - STALLED_AFTER
            shipments.append(
                (
                    f"S-{n}",
                    f"O-{n}",
                    "SF Express",
                    "express",
                    last_scan - timedelta(hours=3),
                    last_scan,
                    "in_transit",
                    "杭州转运中心",
                    "{}",
                    due_at,
                )
            )
            timers.append(("shipment_check", f"S-{n}", f"O-{n}", due_at, "{}"))
        await conn.copy_records_to_table(
            "shipments",
            schema_name="logistics",
            records=shipments,
            columns=[
                "shipment_id",
                "order_id",
                "carrier",
                "service_level",
                "dispatched_at",
                "last_scan_at",
                "last_status",
                "last_location",
                "episode",
                "check_at",
            ],
        )
        await conn.copy_records_to_table(
            "timers",
            schema_name="logistics",
            records=timers,
            columns=["kind", "key", "subject", "due_at", "payload"],
        )
        await conn.execute("ANALYZE logistics.shipments; ANALYZE logistics.timers")
    finally:
        await conn.close()


async def seq_scans(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT relname, seq_scan FROM pg_stat_user_tables WHERE schemaname = 'logistics' "
        "AND relname IN ('shipments', 'timers')"
    )
    return {r["relname"]: r["seq_scan"] for r in rows}


async def main(open_shipments: int, due: int, seconds: float) -> None:
    async with bench_stack() as stack:
        # Far enough ahead for loading a million rows and starting the service.
        start = datetime.now(UTC) + timedelta(seconds=60 + open_shipments / 5000)
        loaded = time.perf_counter()
        await load(stack.dsn, open_shipments, due, (start, seconds))
        print(f"loaded {open_shipments:,} open shipments in {time.perf_counter() - loaded:.0f}s")
        app = create_app(stack.settings(LogisticsSettings))
        db = await asyncpg.connect(stack.dsn)
        await app.start()
        try:
            wait_s = (start - datetime.now(UTC)).total_seconds()
            if wait_s < 5:
                raise SystemExit("loading took too long: the window already began")
            await asyncio.sleep(wait_s)
            before = await seq_scans(db)
            await asyncio.sleep(seconds + 5)
            after = await seq_scans(db)
            stats = await db.fetchrow(
                """
                WITH fired AS (
                    SELECT extract(epoch FROM decided_at - (
                        (evidence ->> 'last_scan_at')::timestamptz
                        + (evidence ->> 'threshold_hours')::float * interval '1 hour'
                    )) AS late
                    FROM logistics.notices WHERE stage = 'notice' AND rule = 'stalled'
                )
                SELECT count(*) AS n,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY late) AS p50,
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY late) AS p99,
                       max(late) AS worst
                FROM fired
                """
            )
            assert stats is not None  # noqa: S101 - an aggregate always returns a row
            still_due = await db.fetchval(
                "SELECT count(*) FROM logistics.timers WHERE due_at <= now()"
            )
        finally:
            await app.stop()
            await db.close()
        conditions = (
            f"{open_shipments:,} open shipments, {stats['n']:,} of {due:,} stall checks due "
            f"over {seconds:.0f}s fired ({still_due} still due at the end), one instance, "
            f"sequential scans during the window: shipments "
            f"{after['shipments'] - before['shipments']}, timers "
            f"{after['timers'] - before['timers']}; embedded broker and PostgreSQL, {machine()}"
        )
        report("stall check lateness p50", stats["p50"] * 1000, "ms", conditions)
        report("stall check lateness p99", stats["p99"] * 1000, "ms", conditions)
        report("stall check lateness max", stats["worst"] * 1000, "ms", conditions)
        print(json.dumps({k: float(v) for k, v in dict(stats).items()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--open", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.open, arguments.due, arguments.seconds))

"""Due reminders fired per second with a large backlog of pending timers, their lateness,
and the service's memory as pending timers grow.

1. Runs ``followup run reminder`` and grows the pending timers (due in a week) to 10k, 100k
   and 1M, printing the process's resident memory at each step while it runs its loops.
2. With the 1M pending, adds ``--due`` unpaid orders whose first tier falls due at
   ``--rate`` per second from a few seconds ahead, and measures from the decisions the
   service recorded: reminders decided per second and lateness (decided - due), p50/p99.

    .venv/bin/python -m bench.reminder_timers [--pending 1000000 --due 50000 --rate 5000]
"""

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.environment import bench_stack, machine, report
from bench.service_process import rss_mib, service_process, wait_until

_DETAILS = (
    '{"customer": {"id": "C", "name": "王女士", "member_level": "none"}, '
    '"items": [{"sku": "S", "title": "羊毛混纺大衣", "quantity": 1, "unit_price": "599.00", '
    '"options": {"size": "M"}, "stock_left": 3}]}'
)


async def add_pending(conn: asyncpg.Connection, start: int, stop: int, due: datetime) -> None:
    """Timers of orders that are not due for a week (their orders need no rows: they never
    fire during the benchmark), written the way the service writes them."""
    await conn.execute(
        "INSERT INTO reminder.timers (kind, key, subject, due_at, payload) "
        "SELECT 'unpaid_reminder', 'P-' || n || ':1', 'P-' || n, $3::timestamptz "
        "  + make_interval(secs => n % 86400), "
        '  \'{"tier": 1, "last": false, "later": []}\'::jsonb '
        "FROM generate_series($1::bigint, $2::bigint - 1) AS n",
        start,
        stop,
        due,
    )


async def add_due_orders(
    conn: asyncpg.Connection, count: int, first_due: datetime, rate: float
) -> None:
    """Unpaid orders, one customer each, with tier 1 due at ``rate`` per second."""
    deadline = first_due + timedelta(days=1)
    await conn.execute(
        "INSERT INTO reminder.orders (order_id, customer_id, locale, timezone, created_at, "
        "pay_deadline, total, currency, details, created_event, segment, variant) "
        "SELECT 'D-' || n, 'C-' || n, 'zh-CN', 'Asia/Shanghai', $2::timestamptz, $3, 599, "
        "'CNY', $4::json, 'e-' || n, 'new', 'none' FROM generate_series(0, $1 - 1) AS n",
        count,
        first_due - timedelta(minutes=15),
        deadline,
        _DETAILS,
    )
    await conn.execute(
        "INSERT INTO reminder.timers (kind, key, subject, due_at, payload) "
        "SELECT 'unpaid_reminder', 'D-' || n || ':1', 'D-' || n, "
        "  $2::timestamptz + make_interval(secs => n / $3::float8), "
        '  \'{"tier": 1, "last": false, "later": []}\'::jsonb '
        "FROM generate_series(0, $1 - 1) AS n",
        count,
        first_due,
        rate,
    )


async def main(pending: int, due: int, rate: float) -> None:
    async with bench_stack() as stack:
        policy = Path(tempfile.mkdtemp()) / "followup.toml"
        # Quiet hours off: the benchmark must not depend on the hour it runs at in Shanghai.
        policy.write_text("[reminder.quiet_hours]\nenabled = false\n", encoding="utf-8")
        async with service_process(stack, "reminder", policy) as process:
            conn = await asyncpg.connect(stack.dsn)
            later = datetime.now(UTC) + timedelta(days=7)
            have = 0
            for level in (10_000, 100_000, pending):
                for start in range(have, level, 200_000):
                    await add_pending(conn, start, min(start + 200_000, level), later)
                have = level
                await conn.execute("ANALYZE reminder.timers")
                await asyncio.sleep(5)  # a few timer-loop and stats cycles at this size
                report(
                    "reminder RSS",
                    rss_mib(process.pid),
                    f"MiB with {level:,} pending timers",
                    f"followup run reminder, idle loops running, {machine()}",
                )

            first_due = datetime.now(UTC) + timedelta(seconds=15)
            await add_due_orders(conn, due, first_due, rate)
            window = due / rate
            deadline = time.monotonic() + window + 300

            async def all_decided() -> bool:
                decided = await conn.fetchval(
                    "SELECT count(*) FROM reminder.reminder_decisions WHERE order_id LIKE 'D-%'"
                )
                return bool(decided >= due or time.monotonic() > deadline)

            await wait_until(all_decided, 0.5)
            row = await conn.fetchrow(
                """
                SELECT count(*) AS fired,
                       extract(epoch FROM max(d.decided_at) - min(d.decided_at)) AS span_s,
                       percentile_cont(0.5) WITHIN GROUP (
                           ORDER BY extract(epoch FROM d.decided_at - d.due_at)) AS p50,
                       percentile_cont(0.99) WITHIN GROUP (
                           ORDER BY extract(epoch FROM d.decided_at - d.due_at)) AS p99,
                       count(*) FILTER (WHERE d.decision = 'sent') AS sent
                FROM reminder.reminder_decisions d WHERE d.order_id LIKE 'D-%'
                """
            )
            if row is None:
                raise RuntimeError("no decisions recorded")
            outbox = await conn.fetchval("SELECT count(*) FROM reminder.outbox")
            rss = rss_mib(process.pid)
            await conn.close()
        span = max(float(row["span_s"] or 0), window)
        conditions = (
            f"{row['fired']:,} of {due:,} due at {rate:,.0f}/s over {window:.0f} s, with "
            f"{pending:,} other timers pending; {row['sent']:,} reminders sent to the outbox "
            f"({outbox:,} still waiting for the relay at the end); one instance, RSS "
            f"{rss:.0f} MiB after; {machine()}"
        )
        report("reminder timers fired", row["fired"] / span, "reminders/s", conditions)
        report("reminder lateness p50", float(row["p50"]) * 1000, "ms", conditions)
        report("reminder lateness p99", float(row["p99"]) * 1000, "ms", conditions)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=5_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.pending, arguments.due, arguments.rate))

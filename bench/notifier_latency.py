"""Notifier latency from a command consumed to the provider call, at a steady command rate
(goal: p99 <= 100 ms at 500 commands/s).

A producer publishes commands at a fixed rate to a running notifier; each message's
``accepted_at`` (taken when its batch is consumed) and ``first_call_at`` (when the gateway
call starts) come from the same system clock, whichever of the notifier's processes took
them.

    .venv/bin/python -m bench.notifier_latency [--rate 500] [--seconds 30] [--delivery-processes 2]
"""

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
import uvloop

from bench.environment import bench_stack, machine, report
from bench.notifier_stack import (
    add_delivery_processes_option,
    command,
    count_where,
    gateway,
    instance,
    now,
    running_notifier,
    wait_until,
)


async def main(rate: int, seconds: int, delivery_processes: int) -> None:
    total = rate * seconds
    async with bench_stack() as stack:
        with gateway() as gw, tempfile.TemporaryDirectory() as tmp:
            async with running_notifier(
                stack, gw.url, Path(tmp), delivery_processes=delivery_processes
            ):
                producer = await stack.producer()
                # Let the consumer groups settle so the first second is not a join delay.
                await asyncio.sleep(5)
                started = time.perf_counter()
                tick = 0.01
                per_tick = rate * tick
                sent = 0
                try:
                    while sent < total:
                        due = int((time.perf_counter() - started) / tick * per_tick) + 1
                        while sent < min(due, total):
                            await producer.send(
                                stack.prefix + "followup.notifications",
                                command(sent, now()),
                                key=f"C-{sent}".encode(),
                            )
                            sent += 1
                        await asyncio.sleep(tick)
                    await producer.flush()
                finally:
                    await producer.stop()
                produced_s = time.perf_counter() - started
                conn = await asyncpg.connect(stack.dsn)

                async def all_sent() -> bool:
                    return await count_where(conn, "status = 'sent'") >= total

                await wait_until(all_sent, every_s=0.2, timeout_s=120)
                await conn.close()
        conn = await asyncpg.connect(stack.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, "
                "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS p, "
                "max(ms) AS worst FROM (SELECT extract(epoch FROM first_call_at - accepted_at) "
                "* 1000 AS ms FROM notifier.deliveries WHERE first_call_at IS NOT NULL) t"
            )
        finally:
            await conn.close()
    if row is None or row["p"] is None:
        raise SystemExit("no message reached the gateway")
    p50, p95, p99 = row["p"]
    conditions = (
        f"{row['n']} of {total} commands at {total / produced_s:,.0f}/s for {produced_s:.0f} s, "
        f"{instance(delivery_processes)}, gateway in its own process, embedded broker and "
        f"PostgreSQL, {machine()}"
    )
    report("command consumed -> provider call p50", p50, "ms", conditions)
    report("command consumed -> provider call p95", p95, "ms", conditions)
    report("command consumed -> provider call p99", p99, "ms", conditions)
    report("command consumed -> provider call max", row["worst"], "ms", conditions)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_delivery_processes_option(parser)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=30)
    arguments = parser.parse_args()
    # The event loop `followup run` uses: uvicorn picks uvloop when it is installed.
    uvloop.run(main(arguments.rate, arguments.seconds, arguments.delivery_processes))

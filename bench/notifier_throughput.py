"""Notifier throughput (goal: >= 2,000 deliveries/s per instance to a local webhook receiver).

N commands wait on ``followup.notifications``, all due at the same moment a little later
(``not_before``). One notifier starts: first it takes them in (intake into the PostgreSQL
queue, measured until every command is queued), then at the due time it delivers them to a
local HTTP gateway running in another process (measured by the gateway from its first to its
last message). Every message goes to its own customer, so the contact budget does not hold
any back. By default the notifier delivers from two processes of its own
(``delivery_processes = 2``); ``--delivery-processes 0`` measures one process doing it all.

    .venv/bin/python -m bench.notifier_throughput [--messages 20000] [--delivery-processes 2]
"""

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import uvloop

from bench.environment import bench_stack, machine, report
from bench.notifier_stack import (
    add_delivery_processes_option,
    attempt_outcomes,
    command,
    count_where,
    gateway,
    instance,
    now,
    running_notifier,
    wait_until,
)


async def main(messages: int, delivery_processes: int) -> None:
    async with bench_stack() as stack:
        at = now()
        due = at + timedelta(seconds=20 + messages / 500)
        await stack.publish_all(
            "followup.notifications",
            ((f"C-{n}".encode(), command(n, at, due)) for n in range(messages)),
        )
        conn = await asyncpg.connect(stack.dsn)
        with gateway() as gw, tempfile.TemporaryDirectory() as tmp:
            async with running_notifier(
                stack, gw.url, Path(tmp), delivery_processes=delivery_processes
            ):
                started = time.perf_counter()

                async def all_queued() -> bool:
                    return await count_where(conn, "true") >= messages

                async def first_arrived() -> bool:
                    return gw.received > 0

                async def all_arrived() -> bool:
                    return gw.received >= messages

                async def all_recorded() -> bool:
                    return await count_where(conn, "status = 'sent'") >= messages

                queued = await wait_until(all_queued, every_s=0.05)
                first = await wait_until(first_arrived, every_s=0.001)
                last = await wait_until(all_arrived, every_s=0.005)
                # The last results reach the database with the next batch write.
                await wait_until(all_recorded, every_s=0.1)
            recorded = await count_where(conn, "status = 'sent'")
            outcomes = await attempt_outcomes(conn)
        await conn.close()
    conditions = (
        f"{messages} messages, {instance(delivery_processes)} (each: concurrency 1000, "
        "claims of 500), "
        f"gateway in its own process, embedded broker and PostgreSQL, {machine()}"
    )
    report(
        "notifier intake into the queue", messages / (queued - started), "commands/s", conditions
    )
    report(
        "notifier deliveries to a local webhook",
        gw.received / (last - first),
        "deliveries/s",
        conditions,
    )
    report("recorded as sent", recorded, "messages", f"provider calls: {outcomes}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_delivery_processes_option(parser)
    parser.add_argument("--messages", type=int, default=20_000)
    # The event loop `followup run` uses: uvicorn picks uvloop when it is installed.
    arguments = parser.parse_args()
    uvloop.run(main(arguments.messages, arguments.delivery_processes))

"""After-sales steps through the whole service: validate, deduplicate, lock and decide each
case, record state, promises, messages, history, timers and outbox commands in one
transaction per batch, and publish the commands.

Publishes ``--cases`` refund-only cases, each requested, approved and refunded (three steps,
three messages), with the service stopped; then starts it (in this process, real clock) and
measures the time until every step is processed and every command published. The issue sets
no performance goal: this figure is for comparison with ``bench.ingest_ceiling``.

    .venv/bin/python -m bench.aftersales_throughput [--cases 5000]
"""

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.environment import bench_stack, machine, report
from services.aftersales.app import create_app
from services.aftersales.settings import AftersalesSettings

STEPS = ("requested", "approved", "refunded")


def steps(cases: int, at: datetime) -> Iterator[tuple[bytes, bytes]]:
    for stage in STEPS:
        for n in range(cases):
            data: dict[str, object] = {"case_id": f"R-{n}", "order_id": f"O-{n}"}
            if stage == "requested":
                data |= {"kind": "refund_only", "requested_at": at.isoformat(), "amount": "59.00"}
                data["currency"] = "CNY"
            else:
                data["at"] = (at + timedelta(minutes=STEPS.index(stage))).isoformat()
            event = {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "bench",
                "type": f"shop.aftersale.{stage}",
                "time": at.isoformat(),
                "data": data,
            }
            yield f"O-{n}".encode(), json.dumps(event).encode()


async def main(cases: int) -> None:
    async with bench_stack() as stack:
        now = datetime.now(UTC) - timedelta(minutes=5)
        published = await stack.publish_all("shop.aftersales", steps(cases, now))
        settings = stack.settings(
            AftersalesSettings,
            kafka_session_timeout_ms=2000,
            kafka_heartbeat_interval_ms=300,
        )
        app = create_app(settings)
        conn = await asyncpg.connect(stack.dsn)
        started = time.perf_counter()
        await app.start()
        try:
            while True:
                row = await conn.fetchrow(
                    "SELECT (SELECT count(*) FROM aftersales.inbox) AS seen, "
                    "(SELECT count(*) FROM aftersales.case_messages) AS decided, "
                    "(SELECT count(*) FROM aftersales.outbox) AS waiting"
                )
                if row and row["seen"] == published and row["waiting"] == 0:
                    break
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - started
            decided = row["decided"] if row else 0
        finally:
            await app.stop()
            await conn.close()
        conditions = (
            f"{cases} refund-only cases x {len(STEPS)} steps, service started after publishing "
            f"(includes start-up and group join), batches of up to 1000, 3 partitions, "
            f"embedded broker and PostgreSQL, {machine()}"
        )
        report("after-sales steps processed", published / elapsed, "events/s", conditions)
        report(
            "after-sales messages decided and published",
            decided / elapsed,
            "commands/s",
            conditions,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    asyncio.run(main(parser.parse_args().cases))

"""The ceiling the ingest goals are measured against: a bare aiokafka + asyncpg batch loop.

Consumes ``order.created`` events in batches, writes each batch with one unnest() INSERT,
commits the offsets after the transaction; no validation, no deduplication. The services'
ingest benchmarks quote their figure as a share of this one, measured on the same machine.

    .venv/bin/python -m bench.ingest_ceiling [--events 200000]
"""

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer

from bench.environment import bench_stack, machine, report


def order_event(n: int, at: datetime) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "bench",
            "type": "shop.order.created",
            "time": at.isoformat(),
            "data": {
                "order_id": f"O-{n}",
                "customer": {"id": f"C-{n % 50000}", "locale": "zh-CN"},
                "items": [
                    {"sku": "SKU-1", "title": "羊毛混纺大衣", "quantity": 1, "unit_price": "599.00"}
                ],
                "total": "599.00",
                "currency": "CNY",
                "created_at": at.isoformat(),
                "pay_deadline": (at + timedelta(hours=24)).isoformat(),
            },
        }
    ).encode()


async def main(events: int, batch: int) -> None:
    async with bench_stack() as stack:
        now = datetime.now(UTC)
        await stack.publish_all(
            "shop.orders", ((f"O-{n}".encode(), order_event(n, now)) for n in range(events))
        )
        conn = await asyncpg.connect(stack.dsn)
        await conn.execute("CREATE TABLE raw_orders (id text PRIMARY KEY, body bytea)")
        consumer = AIOKafkaConsumer(
            stack.prefix + "shop.orders",
            bootstrap_servers=stack.bootstrap,
            group_id="ceiling",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 << 20,
        )
        await consumer.start()
        done = 0
        started = time.perf_counter()
        while done < events:
            records = [
                r
                for rs in (await consumer.getmany(timeout_ms=500, max_records=batch)).values()
                for r in rs
            ]
            if not records:
                continue
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO raw_orders SELECT * FROM unnest($1::text[], $2::bytea[])",
                    [f"{r.partition}-{r.offset}" for r in records],
                    [r.value for r in records],
                )
            await consumer.commit()
            done += len(records)
        elapsed = time.perf_counter() - started
        await consumer.stop()
        await conn.close()
        report(
            "raw aiokafka+asyncpg ingest ceiling",
            done / elapsed,
            "events/s",
            f"{done} order.created events, batches of {batch}, 3 partitions, embedded broker and "
            f"PostgreSQL, {machine()}",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.batch))

"""Ingest through the reminder service: ``order.created`` events per second, one instance.

Publishes the events first, then runs ``followup run reminder`` and times from its first
committed batch to the moment the consumer group has committed every offset: validation,
segments, order rows (the order id is the idempotency key, so no inbox), three tier timers
and three decisions per order, and offset commits, all included.

    .venv/bin/python -m bench.reminder_ingest [--events 100000] [--email]

With ``--email`` every customer also has an e-mail address, at one of a few providers as in a
real shop: the address is validated and normalized on the way in.
"""

import argparse
import asyncio
import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.environment import bench_stack, machine, report
from bench.service_process import consume_backlog, service_process
from followup.settings import RuntimeSettings

_PROVIDERS = ("qq.com", "163.com", "gmail.com", "outlook.com")


def order_event(n: int, at: datetime, *, email: bool = False) -> bytes:
    customer_id = f"C-{n % 50000}"
    contact = {"email": f"{customer_id.lower()}@{_PROVIDERS[n % 4]}"} if email else {}
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "bench",
            "type": "shop.order.created",
            "time": at.isoformat(),
            "data": {
                "order_id": f"O-{n}",
                "customer": {
                    "id": customer_id,
                    "name": "王女士",
                    "locale": "zh-CN",
                    "phone": "+8613812345678",
                    **contact,
                    "member_level": "gold" if n % 3 == 0 else "none",
                    "paid_orders": n % 7,
                    "total_spent": f"{(n % 7) * 300}.00",
                },
                "items": [
                    {
                        "sku": "SKU-1",
                        "title": "羊毛混纺大衣",
                        "quantity": 1,
                        "unit_price": "599.00",
                        "options": {"size": "M", "color": "藏青"},
                        "stock_left": n % 20,
                    }
                ],
                "total": "599.00",
                "currency": "CNY",
                "created_at": at.isoformat(),
                "pay_deadline": (at + timedelta(hours=24)).isoformat(),
                "shipping_address": {"city": "上海市", "street": "世纪大道100号"},
            },
        }
    ).encode()


async def main(events: int, email: bool) -> None:
    async with bench_stack() as stack:
        at = datetime.now(UTC)
        await stack.publish_all(
            "shop.orders",
            ((f"O-{n}".encode(), order_event(n, at, email=email)) for n in range(events)),
        )
        # Quiet hours off, so every order plans all three tiers whatever the time of day.
        policy = Path(tempfile.mkdtemp()) / "followup.toml"
        policy.write_text("[reminder.quiet_hours]\nenabled = false\n", encoding="utf-8")
        async with service_process(stack, "reminder", policy) as process:
            consumed = await consume_backlog(stack, process, "reminder", "shop.orders", events)
        conn = await asyncpg.connect(stack.dsn)
        timers = await conn.fetchval("SELECT count(*) FROM reminder.timers")
        planned = await conn.fetchval(
            "SELECT count(*) FROM reminder.reminder_history WHERE decision = 'scheduled'"
        )
        await conn.close()
        runtime = RuntimeSettings()  # what the service read from the same environment
        report(
            "reminder ingest",
            consumed.rate,
            "order.created/s",
            f"{events} events{' with e-mail addresses' if email else ''}, "
            f"{planned} tiers planned, {timers} pending timers (one per order: "
            "each tier schedules the next), first committed batch -> all offsets committed, "
            f"one instance ({consumed.cpu_us_per_event:.0f} µs of service CPU per event), "
            f"batches of up to {runtime.kafka_batch_max_records} in "
            f"{runtime.kafka_batch_lanes} lanes, 3 partitions, embedded broker and "
            f"PostgreSQL, {machine()}",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--email", action="store_true", help="customers with e-mail addresses")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.email))

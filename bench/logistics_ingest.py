"""Tracking events ingested per second by one logistics instance (goal: >= 10,000/s).

Publishes a backlog of shipment events (one dispatch and several scans per parcel, a few
carrier exceptions among them, keyed by order as the platform does), then runs
``followup run logistics`` (as operators run it) and times how fast it works through the
backlog: decode, dead-letter check, inbox dedupe, merge, reconcile, timer moves and outbox.
The figure is the steady rate from the first committed batch to the last.

    .venv/bin/python -m bench.logistics_ingest [--shipments 20000] [--scans 9]
"""

import argparse
import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.environment import bench_stack, machine, report
from bench.service_process import consume_backlog, service_process
from services.logistics.settings import LogisticsSettings

_STATUSES = ["in_transit"] * 900 + ["out_for_delivery"] * 98 + ["exception", "customs_hold"]


def _event(kind: str, at: datetime, data: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "bench",
            "type": kind,
            "time": at.isoformat(),
            "data": data,
        }
    ).encode()


def shipment_events(shipments: int, scans: int, now: datetime) -> Iterator[tuple[bytes, bytes]]:
    """All dispatches, then round after round of one scan per parcel: as in a real stream, a
    batch holds scans of many different parcels, most of them already known."""
    rng = random.Random(4)
    starts = [now - timedelta(hours=rng.uniform(1, 20)) for _ in range(shipments)]
    for n, start in enumerate(starts):
        yield (
            f"O-{n}".encode(),
            _event(
                "shop.shipment.dispatched",
                start,
                {
                    "order_id": f"O-{n}",
                    "shipment_id": f"S-{n}",
                    "carrier": "SF Express",
                    "tracking_number": f"SF{n:010d}",
                    "dispatched_at": start.isoformat(),
                    "estimated_delivery": (start + timedelta(days=3)).date().isoformat(),
                    "service_level": rng.choice(["express", "standard"]),
                },
            ),
        )
    for s in range(scans):
        for n, start in enumerate(starts):
            at = start + timedelta(minutes=5 * (s + 1))
            yield (
                f"O-{n}".encode(),
                _event(
                    "shop.shipment.tracking",
                    at,
                    {
                        "order_id": f"O-{n}",
                        "shipment_id": f"S-{n}",
                        "status": rng.choice(_STATUSES),
                        "scanned_at": at.isoformat(),
                        "location": rng.choice(["杭州转运中心", "上海浦东", "嘉兴分拨中心"]),
                    },
                ),
            )


async def main(shipments: int, scans: int, batch: int) -> None:
    async with bench_stack() as stack:
        now = datetime.now(UTC)
        total = await stack.publish_all("shop.shipments", shipment_events(shipments, scans, now))
        async with service_process(
            stack, "logistics", KAFKA_BATCH_MAX_RECORDS=str(batch)
        ) as process:
            consumed = await consume_backlog(stack, process, "logistics", "shop.shipments", total)
        db = await asyncpg.connect(stack.dsn)
        notices = await db.fetchval("SELECT count(*) FROM logistics.notices")
        timers = await db.fetchval("SELECT count(*) FROM logistics.timers")
        await db.close()
        report(
            "logistics ingest, one instance",
            consumed.rate,
            "events/s",
            f"{total} shipment events ({shipments} parcels: 1 dispatch + {scans} scans, "
            f"{notices} notices decided, {timers} timers live, "
            f"{consumed.cpu_us_per_event:.0f} µs of service CPU per event), batches of up to "
            f"{batch} in {LogisticsSettings().kafka_batch_lanes} lanes, 3 partitions, embedded "
            f"broker and PostgreSQL, {machine()}",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=20_000)
    parser.add_argument("--scans", type=int, default=9)
    parser.add_argument(
        "--batch",
        type=int,
        default=LogisticsSettings().kafka_batch_max_records,
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.shipments, arguments.scans, arguments.batch))

"""SQL of the logistics service."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from followup.db import Connection


@dataclass(frozen=True)
class ShipmentFact:
    shipment_id: str
    order_id: str
    carrier: str | None
    status: str | None
    dispatched_at: datetime | None
    scanned_at: datetime | None


async def record_shipments(conn: Connection, facts: Sequence[ShipmentFact]) -> None:
    """Merge facts in any arrival order: the latest scan wins, dispatch data is kept once seen."""
    for fact in sorted(facts, key=lambda f: f.shipment_id):
        await conn.execute(
            """
            INSERT INTO shipments
                (shipment_id, order_id, carrier, status, dispatched_at, last_scan_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (shipment_id) DO UPDATE SET
                carrier = coalesce(EXCLUDED.carrier, shipments.carrier),
                dispatched_at = coalesce(EXCLUDED.dispatched_at, shipments.dispatched_at),
                status = CASE
                    WHEN EXCLUDED.last_scan_at
                         >= coalesce(shipments.last_scan_at, EXCLUDED.last_scan_at)
                    THEN coalesce(EXCLUDED.status, shipments.status)
                    ELSE shipments.status END,
                last_scan_at = greatest(shipments.last_scan_at, EXCLUDED.last_scan_at),
                updated_at = now()
            """,
            fact.shipment_id,
            fact.order_id,
            fact.carrier,
            fact.status,
            fact.dispatched_at,
            fact.scanned_at,
        )

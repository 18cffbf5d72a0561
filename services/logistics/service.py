"""Logistics use cases."""

from collections.abc import Sequence

from contracts.shop import ShipmentDispatchedEvent, ShipmentTrackingEvent
from followup.db import Connection
from services.logistics import store
from services.logistics.store import ShipmentFact

ShipmentEvent = ShipmentDispatchedEvent | ShipmentTrackingEvent


class LogisticsService:
    async def on_shipment_events(self, conn: Connection, events: Sequence[ShipmentEvent]) -> None:
        facts = [
            ShipmentFact(
                e.data.shipment_id,
                e.data.order_id,
                e.data.carrier,
                None,
                e.data.dispatched_at,
                None,
            )
            if isinstance(e, ShipmentDispatchedEvent)
            else ShipmentFact(
                e.data.shipment_id,
                e.data.order_id,
                None,
                e.data.status.value,
                None,
                e.data.scanned_at,
            )
            for e in events
        ]
        await store.record_shipments(conn, facts)

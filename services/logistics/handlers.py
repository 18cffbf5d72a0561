"""Which topic feeds which use case."""

from contracts.codec import SHIPMENT_EVENTS
from contracts.topics import Topic
from followup.service_app import ServiceRuntime
from services.logistics.service import LogisticsService


def register(runtime: ServiceRuntime, service: LogisticsService) -> None:
    runtime.consume(
        Topic.SHIPMENTS,
        SHIPMENT_EVENTS,
        service.on_shipment_events,
        description="Keeps each shipment's latest state from dispatch events and carrier scans.",
    )

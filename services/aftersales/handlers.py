"""Which topic feeds which use case."""

from contracts.codec import AFTERSALE_EVENTS
from contracts.topics import Topic
from followup.service_app import ServiceRuntime
from services.aftersales.service import AftersalesService


def register(runtime: ServiceRuntime, service: AftersalesService) -> None:
    runtime.consume(
        Topic.AFTERSALES,
        AFTERSALE_EVENTS,
        service.on_aftersale_events,
        description="Tracks each refund or return case through its stages.",
    )

"""Which topic feeds which use case; decoding, dead-lettering and commits are the runtime's."""

from contracts.codec import NOTIFICATION_COMMANDS, ORDER_EVENTS, PAYMENT_EVENTS, SHIPMENT_EVENTS
from contracts.topics import Topic
from followup.service_app import ServiceRuntime
from services.logistics.service import DISPATCH_CHECK, SHIPMENT_CHECK, LogisticsService


def register(runtime: ServiceRuntime, service: LogisticsService) -> None:
    runtime.consume(
        Topic.SHIPMENTS,
        SHIPMENT_EVENTS,
        service.on_shipment_events,
        description="Merges dispatch events and carrier scans (in any order, repeats "
        "harmless) into each shipment's state; carrier exceptions act at once, the "
        "shipment's stall and lateness timer moves with each scan.",
    )
    runtime.consume(
        Topic.PAYMENTS,
        PAYMENT_EVENTS,
        service.on_payment_events,
        description="A paid order starts its dispatch promise (working days on the shop's "
        "holiday calendar).",
    )
    runtime.consume(
        Topic.ORDERS,
        ORDER_EVENTS,
        service.on_order_events,
        description="Cancelled or closed orders get no dispatch or delivery notices; the shop "
        "id picks the shop's timezone.",
    )
    runtime.on_timer(SHIPMENT_CHECK, service.on_shipment_check)
    runtime.on_timer(DISPATCH_CHECK, service.on_dispatch_check)
    runtime.publishes(
        Topic.NOTIFICATIONS,
        schema=NOTIFICATION_COMMANDS.schema,
        description="Dispatch, delay and exception notices with their follow-ups and closing "
        "messages (customer resolved by the notifier from the order), ops escalations of red "
        "cases, and cancellations of pending notices of cancelled orders.",
    )

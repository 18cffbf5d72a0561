"""Which topic feeds which use case; decoding, dead-lettering and commits are the runtime's."""

from contracts.codec import NOTIFICATION_COMMANDS, NOTIFICATION_STATUSES, ORDER_EVENTS
from contracts.topics import Topic
from followup.service_app import ServiceRuntime
from services.notifier.service import NotifierService


def register(runtime: ServiceRuntime, service: NotifierService) -> None:
    runtime.consume(
        Topic.NOTIFICATIONS,
        NOTIFICATION_COMMANDS,
        service.on_commands,
        description="Queues messages to send (at most once per idempotency key), "
        "cancellations of messages not yet sent, and customers' opt-outs and opt-ins.",
    )
    runtime.consume(
        Topic.ORDERS,
        ORDER_EVENTS,
        service.on_order_events,
        description="Learns each customer's contact data and which customer placed which "
        "order, so commands that name only the order reach the right person.",
    )
    runtime.wake_on_insert("deliveries", service.wake)
    runtime.publishes(
        Topic.NOTIFICATION_STATUS,
        schema=NOTIFICATION_STATUSES.schema,
        description="What became of each message: sent, failed or suppressed, with the reason.",
    )

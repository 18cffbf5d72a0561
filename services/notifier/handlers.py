"""Which topic feeds which use case; decoding, dead-lettering and commits are the runtime's."""

from contracts.codec import NOTIFICATION_COMMANDS, NOTIFICATION_STATUSES
from contracts.topics import Topic
from followup.service_app import ServiceRuntime
from services.notifier.service import NotifierService


def register(runtime: ServiceRuntime, service: NotifierService) -> None:
    runtime.consume(
        Topic.NOTIFICATIONS,
        NOTIFICATION_COMMANDS,
        service.on_commands,
        description="Queues messages to send (at most once per idempotency key) and "
        "cancellations of messages not yet sent.",
    )
    runtime.wake_on_insert("deliveries", service.wake)
    runtime.publishes(
        Topic.NOTIFICATION_STATUS,
        schema=NOTIFICATION_STATUSES.schema,
        description="What became of each message: sent, failed or suppressed, with the reason.",
    )

"""Which topic feeds which use case; decoding, dead-lettering and commits are the runtime's."""

from contracts.codec import NOTIFICATION_COMMANDS, ORDER_EVENTS, PAYMENT_EVENTS
from contracts.topics import Topic
from followup.service_app import ServiceRuntime
from services.reminder.service import REMINDER_TIMER, ReminderService


def register(runtime: ServiceRuntime, service: ReminderService) -> None:
    runtime.consume(
        Topic.ORDERS,
        ORDER_EVENTS,
        service.on_order_events,
        description="Plans reminder tiers for new unpaid orders; stops them on cancel/close.",
    )
    runtime.consume(
        Topic.PAYMENTS,
        PAYMENT_EVENTS,
        service.on_payment_events,
        description="Stops reminders the moment an order is paid.",
    )
    runtime.on_timer(REMINDER_TIMER, service.on_reminder_due)
    runtime.publishes(
        Topic.NOTIFICATIONS,
        schema=NOTIFICATION_COMMANDS.schema,
        description="Reminders and order confirmations to send; cancellations of reminders "
        "for orders that were paid, cancelled or closed.",
    )

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
        description="Plans the reminder tiers of new unpaid orders by the customer's segment "
        "and experiment group; stops them on cancel/close (also when that comes first).",
        # Idempotent by order id: an order is planned once, settled once (store.py).
        deduplicate=False,
    )
    runtime.consume(
        Topic.PAYMENTS,
        PAYMENT_EVENTS,
        service.on_payment_events,
        description="Stops reminders the moment an order is paid, attributes the payment to "
        "the reminders sent before it, counts it in the customer's figures and sends the "
        "order confirmation.",
        deduplicate=False,
    )
    runtime.on_timer(REMINDER_TIMER, service.on_reminder_due)
    runtime.publishes(
        Topic.NOTIFICATIONS,
        schema=NOTIFICATION_COMMANDS.schema,
        description="Reminders and order confirmations to send; cancellations of reminders "
        "for orders that were paid, cancelled or closed.",
    )

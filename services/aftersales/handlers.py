"""Which topic feeds which use case; decoding, dead-lettering and commits are the runtime's."""

from contracts.codec import AFTERSALE_EVENTS, NOTIFICATION_COMMANDS, ORDER_EVENTS, PAYMENT_EVENTS
from contracts.topics import Topic
from followup.service_app import ServiceRuntime
from services.aftersales.policy import Wakeup
from services.aftersales.service import AftersalesService, Bookkeeping


def register(runtime: ServiceRuntime, service: AftersalesService, bookkeeping: Bookkeeping) -> None:
    runtime.consume(
        Topic.AFTERSALES,
        AFTERSALE_EVENTS,
        service.on_aftersale_events,
        description="Moves each refund, return or exchange case forward (never backwards), "
        "tells the customer about each new stage and starts the shop's promises.",
    )
    runtime.consume(
        Topic.ORDERS,
        ORDER_EVENTS,
        service.on_order_events,
        description="Remembers what each order contains, so after-sales messages name the item.",
    )
    runtime.consume(
        Topic.PAYMENTS,
        PAYMENT_EVENTS,
        service.on_payment_events,
        description="Remembers how each order was paid: refunds go back to that method.",
    )
    for wakeup in Wakeup:
        runtime.on_timer(wakeup.value, service.on_case_timers)
    runtime.add_loop("aftersales_gauges", bookkeeping.gauges)
    runtime.add_loop("aftersales_forget_orders", bookkeeping.forget_old_orders)
    runtime.publishes(
        Topic.NOTIFICATIONS,
        schema=NOTIFICATION_COMMANDS.schema,
        description="After-sales progress messages (one per case and stage, 'still on it' "
        "updates, reminders to send a return back), escalations of broken promises to "
        "operations, and cancellations of messages a case has overtaken.",
    )

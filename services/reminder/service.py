"""Reminder use cases: what happens on order and payment events and when a tier is due."""

import logging
from collections.abc import Sequence
from typing import Any

from contracts.notifications import (
    CancelNotification,
    MessageClass,
    NotificationKind,
    Priority,
    SendNotification,
)
from contracts.shop import (
    OrderCancelledEvent,
    OrderClosedEvent,
    OrderCreatedEvent,
    PaymentFailedEvent,
    PaymentSucceededEvent,
)
from followup.clock import Clock
from followup.db import Connection
from followup.logs import event_context
from followup.outbox import OutboxMessage, add_to_outbox, notification_command
from followup.timers import DueTimer, Timer, cancel_timers_of, schedule_timers
from services.reminder import store
from services.reminder.metrics import ReminderMetrics
from services.reminder.policy import OrderStatus, TierDue, plan_tiers, reminder_blocker
from services.reminder.settings import ReminderPolicy
from services.reminder.store import Decision, NewOrder, OrderRow, Settlement

log = logging.getLogger(__name__)

REMINDER_TIMER = "unpaid_reminder"
SOURCE = "followup/reminder"

OrderEvent = OrderCreatedEvent | OrderCancelledEvent | OrderClosedEvent
PaymentEvent = PaymentSucceededEvent | PaymentFailedEvent


class ReminderService:
    def __init__(self, policy: ReminderPolicy, clock: Clock, metrics: ReminderMetrics) -> None:
        self._policy = policy
        self._clock = clock
        self._metrics = metrics

    async def on_order_events(self, conn: Connection, events: Sequence[OrderEvent]) -> None:
        created = [e for e in events if isinstance(e, OrderCreatedEvent)]
        await store.record_orders(conn, [_new_order(e) for e in created])
        settlements = [
            Settlement(e.data.order_id, OrderStatus.CANCELLED, e.data.cancelled_at)
            if isinstance(e, OrderCancelledEvent)
            else Settlement(e.data.order_id, OrderStatus.CLOSED, e.data.closed_at)
            for e in events
            if isinstance(e, OrderCancelledEvent | OrderClosedEvent)
        ]
        await self._settle(conn, settlements)
        await self._schedule(conn, created)

    async def on_payment_events(self, conn: Connection, events: Sequence[PaymentEvent]) -> None:
        await self._settle(
            conn,
            [
                Settlement(e.data.order_id, OrderStatus.PAID, e.data.paid_at)
                for e in events
                if isinstance(e, PaymentSucceededEvent)
            ],
        )

    async def _schedule(self, conn: Connection, created: Sequence[OrderCreatedEvent]) -> None:
        """Plan the tiers of orders that are still unpaid once this batch is applied."""
        if not created:
            return
        orders = await store.lock_orders(conn, [e.data.order_id for e in created])
        now = self._clock.now()
        timers: list[Timer] = []
        decisions: list[Decision] = []
        for event in created:
            order_id = event.data.order_id
            with event_context(event.id):
                if orders[order_id].status is not OrderStatus.UNPAID:
                    log.info("order %s already %s, no reminders", order_id, orders[order_id].status)
                    decisions.append(
                        Decision(order_id, None, "skipped", f"order_{orders[order_id].status}", now)
                    )
                    continue
                for step in plan_tiers(event.time, event.data.pay_deadline, self._policy, now):
                    if isinstance(step, TierDue):
                        timers.append(
                            Timer(
                                REMINDER_TIMER,
                                f"{order_id}:{step.tier}",
                                order_id,
                                step.due_at,
                                {"tier": step.tier},
                            )
                        )
                        decisions.append(
                            Decision(
                                order_id, step.tier, "scheduled", "tier_planned", now, step.due_at
                            )
                        )
                    else:
                        decisions.append(
                            Decision(order_id, step.tier, "skipped", step.reason, now, step.due_at)
                        )
        # Not replacing: a redelivered order.created must not move a timer already planned.
        await schedule_timers(conn, timers, replace=False)
        await self._record(conn, decisions)

    async def _settle(self, conn: Connection, settlements: Sequence[Settlement]) -> None:
        newly_settled = await store.settle_orders(conn, settlements)
        if not newly_settled:
            return
        now = self._clock.now()
        cancelled = await cancel_timers_of(conn, sorted(newly_settled), [REMINDER_TIMER])
        status = {s.order_id: s.status for s in settlements}
        await self._record(
            conn,
            [
                Decision(o, None, "cancelled", f"order_{status[o]}", now)
                for o in sorted(newly_settled)
            ],
        )
        log.info("stopped reminders of %d orders (%d timers)", len(newly_settled), cancelled)
        # A reminder decided a moment ago may still wait in the notifier's queue: drop it.
        reminded = await store.orders_with_sent_reminders(conn, sorted(newly_settled))
        orders = await store.lock_orders(conn, sorted(reminded))
        await add_to_outbox(
            conn,
            [
                notification_command(
                    CancelNotification(
                        order_id=order_id,
                        customer_id=orders[order_id].customer_id,
                        kinds=[NotificationKind.UNPAID_REMINDER],
                        reason=f"order_{status[order_id]}",
                    ),
                    source=SOURCE,
                    time=now,
                )
                for order_id in sorted(reminded)
            ],
        )

    async def on_reminder_due(self, conn: Connection, timers: Sequence[DueTimer]) -> None:
        orders = await store.lock_orders(conn, [t.subject for t in timers])
        now = self._clock.now()
        commands: list[OutboxMessage] = []
        decisions: list[Decision] = []
        for timer in timers:
            tier = int(timer.payload["tier"])
            order = orders.get(timer.subject)
            if order is None or order.details is None or order.pay_deadline is None:
                decisions.append(Decision(timer.subject, tier, "skipped", "order_unknown", now))
                continue
            with event_context(order.created_event or ""):
                blocker = reminder_blocker(order.status, order.pay_deadline, now)
                if blocker is not None:
                    decisions.append(
                        Decision(order.order_id, tier, "skipped", blocker, now, timer.due_at)
                    )
                    continue
                commands.append(
                    notification_command(
                        _reminder(order, order.details, tier, last=tier == len(self._policy.tiers)),
                        source=SOURCE,
                        time=now,
                    )
                )
                decisions.append(
                    Decision(order.order_id, tier, "sent", "tier_due", now, timer.due_at)
                )
                log.info("reminder tier %d for order %s", tier, order.order_id)
        await add_to_outbox(conn, commands)
        await self._record(conn, decisions)

    async def _record(self, conn: Connection, decisions: Sequence[Decision]) -> None:
        await store.record_decisions(conn, decisions)
        for d in decisions:
            self._metrics.decisions.labels(d.decision, d.reason, str(d.tier or "")).inc()


def _new_order(event: OrderCreatedEvent) -> NewOrder:
    data = event.data
    return NewOrder(
        order_id=data.order_id,
        customer_id=data.customer.id,
        locale=data.customer.locale,
        timezone=data.customer.timezone,
        created_at=event.time,
        pay_deadline=data.pay_deadline,
        total=data.total,
        currency=data.currency,
        details=data.model_dump(
            mode="json", include={"customer", "items", "shipping_address", "shop_id"}
        ),
        created_event=event.id,
    )


def _reminder(
    order: OrderRow, details: dict[str, Any], tier: int, *, last: bool
) -> SendNotification:
    items = details["items"]
    return SendNotification(
        idempotency_key=f"unpaid_reminder:{order.order_id}:{tier}",
        kind=NotificationKind.UNPAID_REMINDER,
        template=f"unpaid_reminder.tier{tier}",
        customer_id=order.customer_id,
        order_id=order.order_id,
        locale=order.locale or "zh-CN",
        timezone=order.timezone or "Asia/Shanghai",
        variables={
            "customer_name": details["customer"].get("name"),
            "order_id": order.order_id,
            "items": [
                {"title": i["title"], "quantity": i["quantity"], "options": i.get("options", {})}
                for i in items
            ],
            "total": str(order.total),
            "currency": order.currency,
            "pay_deadline": order.pay_deadline.isoformat() if order.pay_deadline else None,
            "tier": tier,
            "last_tier": last,
        },
        meta={"tier": tier},
        priority=Priority.LOW,
        message_class=MessageClass.MARKETING,
        expires_at=order.pay_deadline,
        source_event_id=order.created_event,
        source_event_time=order.created_at,
    )

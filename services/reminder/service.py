"""Reminder use cases: what happens on order and payment events and when a tier is due.

Each method runs inside the transaction of one consumed batch or one batch of due timers and
returns ``Tally.commit``, so metrics count only what committed.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from contracts.notifications import (
    CancelNotification,
    MessageClass,
    NotificationKind,
    Priority,
    SendNotification,
)
from contracts.shop import (
    MemberLevel,
    OrderCancelledEvent,
    OrderClosedEvent,
    OrderCreatedEvent,
    OrderEvent,
    PaymentEvent,
    PaymentSucceededEvent,
)
from followup.clock import Clock
from followup.db import Connection
from followup.logs import event_context
from followup.outbox import OutboxMessage, add_to_outbox, notification_command
from followup.pii import mask_email, mask_phone, mask_street
from followup.timers import (
    DueTimer,
    Timer,
    cancel_timers,
    cancel_timers_of,
    pending_timers_of,
    schedule_timers,
)
from followup.values import value
from services.reminder import store
from services.reminder.metrics import ReminderMetrics, Tally
from services.reminder.policy import (
    HOLDOUT,
    AlreadyReminded,
    CustomerFigures,
    Defer,
    DueReminder,
    OrderStatus,
    Skip,
    TierDue,
    TierSkipped,
    assign_variant,
    decide_due_reminder,
    dispatch_window,
    known_figures,
    plan_tiers,
    points_for,
    reminder_blocker,
    segment_of,
    template_name,
    tiers_for,
)
from services.reminder.settings import ReminderPolicy, ReminderTier, Segment
from services.reminder.store import Decision, NewOrder, OrderRow, ReminderMessage, Settlement

log = logging.getLogger(__name__)
_NO_FIGURES = CustomerFigures()

REMINDER_TIMER = "unpaid_reminder"
SOURCE = "followup/reminder"
CONFIRMATION = "order_confirmation"

AfterCommit = Callable[[], None]


class ReminderService:
    def __init__(self, policy: ReminderPolicy, clock: Clock, metrics: ReminderMetrics) -> None:
        self._policy = policy
        self._clock = clock
        self._metrics = metrics

    # --- consumed events ---------------------------------------------------------------------

    async def on_order_events(self, conn: Connection, events: Sequence[OrderEvent]) -> AfterCommit:
        tally = Tally()
        created = [e for e in events if isinstance(e, OrderCreatedEvent)]
        known = await store.created_orders(conn, [e.data.order_id for e in created])
        # An order republished under a new event id is not planned again: its tiers may have
        # fired already. Within a batch the first event of an order is the one planned.
        first_seen = list(
            {e.data.order_id: e for e in reversed(created) if e.data.order_id not in known}.values()
        )
        new_orders = await self._new_orders(conn, created, first_seen)
        states = await store.record_orders(conn, new_orders)
        settled_now = await self._settle(
            conn,
            [
                Settlement(e.data.order_id, OrderStatus.CANCELLED, e.data.cancelled_at)
                if isinstance(e, OrderCancelledEvent)
                else Settlement(e.data.order_id, OrderStatus.CLOSED, e.data.closed_at)
                for e in events
                if isinstance(e, OrderCancelledEvent | OrderClosedEvent)
            ],
            tally,
        )
        plans = {o.order_id: o for o in new_orders if o.plan is not None}
        paid_first = await self._schedule(
            conn,
            created=first_seen,
            plans=plans,
            stored=states,
            settled_now=settled_now,
            tally=tally,
        )
        # A payment that came before its order: now the customer and the items are known.
        await store.credit_customers(conn, paid_first)
        await self._confirm(conn, paid_first, tally)
        return tally.commit

    async def on_payment_events(
        self, conn: Connection, events: Sequence[PaymentEvent]
    ) -> AfterCommit:
        tally = Tally()
        await self._settle(
            conn,
            [
                Settlement(e.data.order_id, OrderStatus.PAID, e.data.paid_at, e.data.amount)
                for e in events
                if isinstance(e, PaymentSucceededEvent)
            ],
            tally,
        )
        return tally.commit

    async def _new_orders(
        self,
        conn: Connection,
        created: Sequence[OrderCreatedEvent],
        first_seen: Sequence[OrderCreatedEvent],
    ) -> list[NewOrder]:
        """Order rows with the segment and experiment group each order is planned with, and
        the tier plan of orders seen for the first time (kept only while they are unpaid)."""
        own = await store.customer_figures(conn, [e.data.customer.id for e in created])
        planned = {id(e) for e in first_seen}
        # One row per order: the event that is planned, else the latest of a republished one.
        rows = {e.data.order_id: e for e in created}
        rows.update((e.data.order_id, e) for e in first_seen)
        now = self._clock.now()
        orders = []
        for event in rows.values():
            data = event.data
            customer = data.customer
            # In UTC, like the clock and every time read back from PostgreSQL: comparing
            # datetimes with different tzinfo objects asks both for their offset (0.6 us with
            # the parser's own tzinfo, against 0.05 us), and planning compares many.
            created_at = event.time.astimezone(UTC)
            pay_deadline = data.pay_deadline.astimezone(UTC)
            last_paid_at = customer.last_paid_at
            hints = CustomerFigures(
                paid_orders=customer.paid_orders or 0,
                total_spent=customer.total_spent or Decimal(0),
                last_paid_at=last_paid_at.astimezone(UTC) if last_paid_at is not None else None,
                member=customer.member_level is not MemberLevel.NONE,
            )
            figures = known_figures(own.get(customer.id, _NO_FIGURES), hints)
            segment = segment_of(figures, created_at, self._policy.segmentation)
            variant = assign_variant(customer.id, self._policy.experiment)
            plan = None
            if id(event) in planned and variant != HOLDOUT:
                steps = plan_tiers(
                    created_at,
                    pay_deadline,
                    tiers_for(segment, variant, self._policy),
                    self._policy,
                    timezone=customer.timezone,
                    now=now,
                )
                plan = [_planned(step) for step in steps]
            orders.append(
                NewOrder(
                    order_id=data.order_id,
                    customer_id=customer.id,
                    locale=customer.locale,
                    timezone=customer.timezone,
                    created_at=created_at,
                    pay_deadline=pay_deadline,
                    total=data.total,
                    currency=data.currency,
                    details=data.model_dump_json(
                        include={"customer", "items", "shipping_address", "shop_id"}
                    ),
                    created_event=event.id,
                    segment=segment.value,
                    variant=variant,
                    plan=plan,
                    planned_at=now,
                )
            )
        return orders

    async def _schedule(
        self,
        conn: Connection,
        *,
        created: Sequence[OrderCreatedEvent],
        plans: Mapping[str, NewOrder],
        stored: dict[str, store.OrderState],
        settled_now: dict[str, OrderStatus],
        tally: Tally,
    ) -> list[str]:
        """Start the planned tiers of orders seen for the first time and still unpaid; returns
        those already paid. Only the first due tier gets a timer; each tier that fires
        schedules the next from the order's plan, so pending timers stay one per order."""
        if not created:
            return []
        now = self._clock.now()
        timers: list[Timer] = []
        decisions: list[Decision] = []
        paid: list[str] = []
        for event in created:
            order_id = event.data.order_id
            state = stored[order_id]
            status = settled_now.get(order_id, state.status)
            segment, variant = state.segment or Segment.NEW.value, state.variant or "none"
            if status is not OrderStatus.UNPAID:
                with event_context(event.id):
                    log.info("order %s already %s, no reminders", order_id, status)
                decisions.append(
                    Decision(order_id, None, "skipped", f"order_{status}", now, None, segment)
                )
                if status is OrderStatus.PAID:
                    paid.append(order_id)
                continue
            tally.inc(self._metrics.orders, (segment, variant))
            new_order = plans.get(order_id)
            if new_order is None or new_order.plan is None:
                decisions.append(Decision(order_id, None, "skipped", "holdout", now, None, segment))
                continue
            first_due = None
            for tier, decision, reason, due_at, _last in new_order.plan:
                tally.inc(self._metrics.decisions, (decision, reason, str(tier), segment))
                if first_due is None and decision in _WILL_FIRE:
                    first_due = _tier_timer(order_id, tier, due_at)
            if first_due is not None:
                timers.append(first_due)
        # Not replacing: a redelivered order.created must not move a timer already planned.
        await schedule_timers(conn, timers, replace=False)
        await self._record(conn, decisions, tally)
        return paid

    async def _settle(
        self, conn: Connection, settlements: Sequence[Settlement], tally: Tally
    ) -> dict[str, OrderStatus]:
        """Stop the reminders of orders settled now; returns them with their new status."""
        newly_settled = await store.settle_orders(conn, settlements)
        if not newly_settled:
            return {}
        now = self._clock.now()
        settled = sorted(newly_settled)
        cancelled = await cancel_timers_of(conn, settled, [REMINDER_TIMER])
        orders = await store.lock_orders(conn, settled)
        decisions = [
            Decision(o.order_id, None, "cancelled", f"order_{o.status}", now, None, o.segment)
            for o in orders.values()
        ]
        log.info("stopped reminders of %d orders (%d timers)", len(settled), cancelled)
        paid = [o for o in orders.values() if o.status is OrderStatus.PAID]
        await store.credit_customers(conn, [o.order_id for o in paid])
        decisions += self._attribute(paid, tally)
        await self._record(conn, decisions, tally)
        await self._cancel_pending_messages(conn, settled, now)
        await self._confirm(conn, [o.order_id for o in paid], tally)
        return {o.order_id: o.status for o in orders.values()}

    def _attribute(self, paid: Sequence[OrderRow], tally: Tally) -> list[Decision]:
        """Recovered orders: paid after at least one reminder, credited to the last tier sent
        before the payment. Orders planned but never reminded (holdout, or paid before tier 1)
        count as conversions of their group, for comparison."""
        decisions = []
        for order in paid:
            if order.segment is None or order.variant is None or order.settled_at is None:
                continue  # paid before it was ever planned: not a reminder candidate
            segment, variant = order.segment, order.variant
            reminded = (
                order.last_reminded_at is not None and order.last_reminded_at <= order.settled_at
            )
            tally.inc(self._metrics.paid, (segment, variant, "yes" if reminded else "no"))
            if not reminded or order.last_reminded_at is None:
                continue
            tier = str(order.reminded_tier or "listed")
            amount = float(order.paid_amount or order.total or 0)
            waited = (order.settled_at - order.last_reminded_at).total_seconds()
            currency = order.currency or ""

            tally.inc(self._metrics.recovered, (tier, segment, variant))
            tally.inc(self._metrics.recovered_revenue, (tier, segment, variant, currency), amount)
            tally.observe(self._metrics.time_to_payment, (tier, segment), waited)
            decisions.append(
                Decision(
                    order.order_id,
                    order.reminded_tier,
                    "recovered",
                    "paid_after_reminder",
                    order.settled_at,
                    None,
                    segment,
                )
            )
        return decisions

    async def _cancel_pending_messages(
        self, conn: Connection, settled: Sequence[str], now: datetime
    ) -> None:
        """A reminder decided a moment ago may still wait in the notifier's queue: drop it,
        unless it also lists an order that is still open."""
        messages = await store.messages_to_cancel(conn, settled, now)
        await add_to_outbox(
            conn,
            [
                notification_command(
                    CancelNotification(
                        idempotency_keys=[m.idempotency_key],
                        customer_id=m.customer_id,
                        reason="orders_settled" if len(m.order_ids) > 1 else "order_settled",
                    ),
                    source=SOURCE,
                    time=now,
                )
                for m in messages
            ],
        )

    async def _confirm(self, conn: Connection, order_ids: Sequence[str], tally: Tally) -> None:
        """The order confirmation (订单确认), once per order, as soon as the order is both paid
        and known (the payment may come first)."""
        if not self._policy.confirmation.enabled or not order_ids:
            return
        now = self._clock.now()
        confirmable = await store.confirm_once(conn, order_ids, now)
        if not confirmable:
            return
        orders = await store.lock_orders(conn, sorted(confirmable))
        commands: list[OutboxMessage] = []
        decisions: list[Decision] = []
        for order in orders.values():
            if order.settled_at is None or order.details is None:
                continue
            if now - order.settled_at > self._policy.confirmation.max_delay:
                outcome, reason = "skipped", "confirmation_too_late"
            else:
                outcome, reason = "sent", "order_confirmation"
                commands.append(
                    notification_command(
                        self._confirmation(order, order.details), source=SOURCE, time=now
                    )
                )
            decisions.append(
                Decision(order.order_id, None, outcome, reason, now, None, order.segment)
            )
            tally.inc(self._metrics.confirmations, (outcome,))
        await add_to_outbox(conn, commands)
        await self._record(conn, decisions, tally)

    # --- due timers ----------------------------------------------------------------------------

    async def on_reminder_due(self, conn: Connection, timers: Sequence[DueTimer]) -> AfterCommit:
        tally = Tally()
        now = self._clock.now()
        orders = await store.lock_orders_and_open_siblings(conn, [t.subject for t in timers])
        reminded_customers = await store.last_reminded(
            conn, [o.customer_id for o in orders.values() if o.customer_id]
        )
        reminded_orders = {o.order_id: o.last_reminded_at for o in orders.values()}
        by_customer: dict[str, list[OrderRow]] = {}
        for row in orders.values():
            by_customer.setdefault(row.customer_id or "", []).append(row)
        batch = _FiringBatch()
        for timer in sorted(timers, key=lambda t: (t.due_at, t.key)):
            tier = int(timer.payload["tier"])
            order = orders.get(timer.subject)
            if order is None or order.details is None or order.pay_deadline is None:
                batch.decisions.append(
                    Decision(timer.subject, tier, "skipped", "order_unknown", now)
                )
                continue
            customer_id = order.customer_id or ""
            with event_context(order.created_event or ""):
                decision = decide_due_reminder(
                    DueReminder(
                        order.status,
                        order.pay_deadline,
                        order.timezone or "Asia/Shanghai",
                        reminded_customers.get(customer_id),
                        reminded_orders.get(order.order_id),
                        timer.due_at,
                    ),
                    self._policy,
                    now,
                )
                later = _later(order, tier)
                if isinstance(decision, Defer) and later and decision.until >= later[0].due_at:
                    # Waiting would bring this tier level with the next one, which says more.
                    decision = Skip(f"superseded_by_tier_{later[0].tier}")
                if isinstance(decision, Defer):
                    batch.moved.append(
                        Timer(timer.kind, timer.key, timer.subject, decision.until, timer.payload)
                    )
                    batch.decide(
                        order, tier, "deferred", decision.reason, now=now, due_at=decision.until
                    )
                    continue
                if isinstance(decision, Skip):
                    batch.decide(
                        order, tier, "skipped", decision.reason, now=now, due_at=timer.due_at
                    )
                    if reminder_blocker(order.status, order.pay_deadline, now) is not None:
                        continue  # settled or closed: no later tier either
                elif isinstance(decision, AlreadyReminded):
                    batch.decide(
                        order, tier, "merged", "in_recent_message", now=now, due_at=timer.due_at
                    )
                    batch.reminded.append((order.order_id, tier, now))
                else:
                    listed = await self._send(
                        conn,
                        order=order,
                        timer=timer,
                        customer_orders=by_customer[customer_id],
                        batch=batch,
                        now=now,
                    )
                    reminded_customers[customer_id] = now
                    for order_id in listed:
                        reminded_orders[order_id] = now
                    log.info("reminder tier %d for order %s", tier, order.order_id)
                batch.moved += _next_tier(timer.subject, later)
        await schedule_timers(conn, batch.moved)
        await add_to_outbox(conn, batch.commands)
        await store.record_messages(conn, batch.messages)
        await store.mark_reminded(conn, batch.reminded)
        await store.mark_customers_reminded(conn, {m.customer_id: now for m in batch.messages})
        await self._record(conn, batch.decisions, tally)
        for message in batch.messages:
            size = str(min(len(message.order_ids), 3)) + (
                "+" if len(message.order_ids) >= 3 else ""
            )
            tally.inc(self._metrics.messages, (size,))
        return tally.commit

    async def _send(
        self,
        conn: Connection,
        *,
        order: OrderRow,
        timer: DueTimer,
        customer_orders: Sequence[OrderRow],
        batch: "_FiringBatch",
        now: datetime,
    ) -> list[str]:
        """One message for the customer, listing every open order of theirs. Tiers of those
        other orders due within the minimum gap are merged into it instead of following it."""
        tier = int(timer.payload["tier"])
        segment = order.segment or Segment.NEW.value
        variant = order.variant or "none"
        tiers = tiers_for(Segment(segment), variant, self._policy)
        last = _is_last(order, tier) if order.plan else tier == len(tiers)
        policy_tier = (
            tiers[tier - 1] if tier <= len(tiers) else ReminderTier(after_created=timedelta(0))
        )
        siblings = sorted(
            (
                o
                for o in customer_orders
                if o.order_id != order.order_id
                and o.status is OrderStatus.UNPAID
                and o.details is not None
                and o.pay_deadline is not None
                and o.pay_deadline > now
                and o.variant != HOLDOUT
            ),
            key=lambda o: (o.pay_deadline or now, o.order_id),
        )
        window_end = now + self._policy.min_gap
        # Most customers have one open order: no round trip for them.
        folded = (
            await pending_timers_of(
                conn, REMINDER_TIMER, [o.order_id for o in siblings], due_before=window_end
            )
            if siblings
            else []
        )
        if folded:
            await cancel_timers(conn, REMINDER_TIMER, [t.key for t in folded])
        folded_tier: dict[str, int] = {}
        for pending in folded:
            sibling = next(o for o in siblings if o.order_id == pending.subject)
            later = _later(sibling, int(pending.payload["tier"]))
            # Its tiers due within the gap are said by this message; the first after it stays.
            merged = [_LaterTier(int(pending.payload["tier"]), pending.due_at, False)]
            merged += [t for t in later if t.due_at < window_end]
            for step in merged:
                batch.decide(
                    sibling, step.tier, "merged", "into_message", now=now, due_at=step.due_at
                )
            folded_tier[pending.subject] = merged[-1].tier
            batch.moved += _next_tier(pending.subject, later[len(merged) - 1 :])
        key = store.reminder_key(order.order_id, tier)
        listed = [order, *siblings]
        batch.commands.append(
            notification_command(
                self._reminder(order, listed, tier, policy_tier, last=last, key=key),
                source=SOURCE,
                time=now,
            )
        )
        batch.messages.append(
            ReminderMessage(
                key,
                order.customer_id or "",
                [o.order_id for o in listed],
                tier,
                segment,
                variant,
                now,
                max(o.pay_deadline for o in listed if o.pay_deadline is not None),
            )
        )
        batch.decide(
            order,
            tier,
            "sent",
            "tier_due" if not siblings else f"tier_due_with_{len(siblings)}_more",
            now=now,
            due_at=timer.due_at,
        )
        batch.reminded.append((order.order_id, tier, now))
        batch.reminded += [(o.order_id, folded_tier.get(o.order_id), now) for o in siblings]
        return [o.order_id for o in listed]

    async def _record(self, conn: Connection, decisions: Sequence[Decision], tally: Tally) -> None:
        await store.record_decisions(conn, decisions)
        for d in decisions:
            labels = (d.decision, _reason_label(d.reason), str(d.tier or ""), d.segment or "")
            tally.inc(self._metrics.decisions, labels)

    # --- commands --------------------------------------------------------------------------

    def _reminder(
        self,
        order: OrderRow,
        listed: Sequence[OrderRow],
        tier: int,
        policy_tier: ReminderTier,
        *,
        last: bool,
        key: str,
    ) -> SendNotification:
        details = order.details or {}
        customer = details.get("customer", {})
        segment = order.segment or Segment.NEW.value
        variant = order.variant or "none"
        member = customer.get("member_level", "none") != "none"
        coupon = policy_tier.coupon
        meta: dict[str, Any] = {"tier": tier, "segment": segment}
        if variant != "none":
            meta["variant"] = variant
        if len(listed) > 1:
            meta["orders"] = len(listed)
        summaries = [_order_summary(o, self._policy.low_stock) for o in listed]
        primary = summaries[0]
        variables: dict[str, Any] = {
            "customer_name": customer.get("name"),
            "segment": segment,
            "tier": tier,
            "last_tier": last,
            **primary,
            "low_stock_items": [
                {"title": i["title"], "stock_left": i["stock_left"]}
                for i in primary["items"]
                if i["low_stock"]
            ],
            "first_deadline": min(o["pay_deadline"] for o in summaries),
            "hold_minutes": int(self._policy.hold_stock_for.total_seconds() // 60),
            "member_level": customer.get("member_level", "none"),
            "points": points_for(order.total or Decimal(0), self._policy.points_per_unit)
            if member
            else 0,
            "coupon": {
                "code": coupon.code,
                "amount": str(coupon.amount),
                "min_spend": str(coupon.min_spend) if coupon.min_spend is not None else None,
            }
            if coupon
            else None,
            "orders": summaries,
        }
        return SendNotification(
            idempotency_key=key,
            kind=NotificationKind.UNPAID_REMINDER,
            template=template_name(policy_tier, segment, tier, last=last, several=len(listed) > 1),
            customer_id=order.customer_id,
            order_id=order.order_id,
            locale=order.locale or "zh-CN",
            timezone=order.timezone or "Asia/Shanghai",
            variables=variables,
            meta=meta,
            priority=Priority.LOW,
            message_class=MessageClass.MARKETING,
            expires_at=min(o.pay_deadline for o in listed if o.pay_deadline is not None),
            source_event_id=order.created_event,
            source_event_time=order.created_at,
        )

    def _confirmation(self, order: OrderRow, details: dict[str, Any]) -> SendNotification:
        customer = details.get("customer", {})
        address = details.get("shipping_address") or None
        timezone = order.timezone or "Asia/Shanghai"
        paid_at = order.settled_at or self._clock.now()
        earliest, latest = dispatch_window(
            paid_at,
            self._policy.confirmation.dispatch_min_days,
            self._policy.confirmation.dispatch_max_days,
            timezone,
        )
        return SendNotification(
            idempotency_key=f"{CONFIRMATION}:{order.order_id}",
            kind=NotificationKind.ORDER_CONFIRMATION,
            template=CONFIRMATION,
            customer_id=order.customer_id,
            order_id=order.order_id,
            locale=order.locale or "zh-CN",
            timezone=timezone,
            variables={
                "customer_name": customer.get("name"),
                "order_id": order.order_id,
                "items": [
                    {
                        "title": i["title"],
                        "quantity": i["quantity"],
                        "options": i.get("options", {}),
                        "unit_price": i["unit_price"],
                    }
                    for i in details.get("items", [])
                ],
                "total": str(order.total),
                "paid_amount": str(
                    order.paid_amount if order.paid_amount is not None else order.total
                ),
                "currency": order.currency,
                "paid_at": paid_at.isoformat(),
                "contact": {
                    "phone": mask_phone(customer["phone"]) if customer.get("phone") else None,
                    "email": mask_email(customer["email"]) if customer.get("email") else None,
                },
                "address": _masked_address(address) if address else None,
                "dispatch_from": earliest.isoformat(),
                "dispatch_by": latest.isoformat(),
            },
            meta={"segment": order.segment} if order.segment else {},
            priority=Priority.HIGH,
            message_class=MessageClass.TRANSACTIONAL,
            source_event_id=order.created_event,
            source_event_time=order.settled_at,
        )


@value
class _LaterTier:
    tier: int
    due_at: datetime
    last: bool


# A planned step: [tier, decision, reason, due time, last tier]; see orders.plan.
PlanStep = list[Any]
_WILL_FIRE = frozenset({"scheduled", "deferred"})


def _planned(step: TierDue | TierSkipped) -> PlanStep:
    if isinstance(step, TierDue):
        if step.deferred_from:
            return [step.tier, "deferred", "quiet_hours", step.due_at, step.last]
        return [step.tier, "scheduled", "tier_planned", step.due_at, step.last]
    return [step.tier, "skipped", step.reason, step.due_at, False]


def _tier_timer(order_id: str, tier: int, due_at: datetime) -> Timer:
    return Timer(REMINDER_TIMER, f"{order_id}:{tier}", order_id, due_at, {"tier": tier})


def _later(order: OrderRow, tier: int) -> list[_LaterTier]:
    """The tiers of the order's plan still to come after ``tier``."""
    return [
        _LaterTier(step[0], datetime.fromisoformat(step[3]), step[4])
        for step in order.plan or []
        if step[0] > tier and step[1] in _WILL_FIRE
    ]


def _is_last(order: OrderRow, tier: int) -> bool:
    return any(step[0] == tier and step[4] for step in order.plan or [])


def _next_tier(order_id: str, later: Sequence[_LaterTier]) -> list[Timer]:
    return [_tier_timer(order_id, later[0].tier, later[0].due_at)] if later else []


class _FiringBatch:
    """What one batch of due timers decided, written together at the end."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.moved: list[Timer] = []
        self.commands: list[OutboxMessage] = []
        self.messages: list[ReminderMessage] = []
        self.reminded: list[tuple[str, int | None, datetime]] = []

    def decide(
        self,
        order: OrderRow,
        tier: int,
        decision: str,
        reason: str,
        *,
        now: datetime,
        due_at: datetime | None,
    ) -> None:
        self.decisions.append(
            Decision(order.order_id, tier, decision, reason, now, due_at, order.segment)
        )


def _order_summary(order: OrderRow, low_stock: int) -> dict[str, Any]:
    items = (order.details or {}).get("items", [])
    return {
        "order_id": order.order_id,
        "items": [
            {
                "title": i["title"],
                "quantity": i["quantity"],
                "options": i.get("options", {}),
                "stock_left": i.get("stock_left"),
                "low_stock": i.get("stock_left") is not None and i["stock_left"] <= low_stock,
            }
            for i in items
        ],
        "total": str(order.total),
        "currency": order.currency,
        "pay_deadline": order.pay_deadline.isoformat() if order.pay_deadline else None,
    }


def _masked_address(address: dict[str, Any]) -> dict[str, Any]:
    return {
        "recipient": address.get("recipient"),
        "phone": mask_phone(address["phone"]) if address.get("phone") else None,
        "region": address.get("region"),
        "city": address.get("city"),
        "district": address.get("district"),
        "street": mask_street(address["street"]) if address.get("street") else None,
        "postal_code": address.get("postal_code"),
    }


def _reason_label(reason: str) -> str:
    """Reasons are bounded words; the number of merged orders is folded away."""
    return "tier_due_with_more" if reason.startswith("tier_due_with_") else reason

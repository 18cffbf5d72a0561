"""After-sales use cases: a step arrives or a timer wakes a case up; decide (policy.py), word
the messages (messages.py), and record it all in the caller's transaction: case state,
promises, decided messages, outbox commands, timers and history."""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import asyncpg

from contracts.notifications import (
    CancelNotification,
    MessageClass,
    NotificationKind,
    SendNotification,
)
from contracts.shop import (
    AftersaleEvent,
    AftersaleRefundedEvent,
    AftersaleRejectedEvent,
    AftersaleRequestedEvent,
    AftersaleReturnShippedEvent,
    OrderCreatedEvent,
    OrderEvent,
    PaymentEvent,
    PaymentSucceededEvent,
)
from followup.clock import Clock
from followup.db import Connection, is_transient
from followup.logs import event_context
from followup.loops import wait_for_any
from followup.outbox import OutboxMessage, add_to_outbox, notification_command
from followup.timers import DueTimer, Timer, cancel_timers_of, schedule_timers
from services.aftersales import store
from services.aftersales.messages import Outgoing, compose
from services.aftersales.metrics import AftersalesMetrics
from services.aftersales.policy import (
    Applied,
    CaseDecision,
    Escalation,
    FactOutcome,
    PromiseChange,
    PromiseKind,
    PromiseOutcome,
    Stage,
    StageFact,
    Wakeup,
    decide,
)
from services.aftersales.settings import AftersalesPolicy
from services.aftersales.store import LogEntry, MessageRow, NewOrder

log = logging.getLogger(__name__)

SOURCE = "followup/aftersales"

_COUNTED = frozenset({PromiseOutcome.KEPT, PromiseOutcome.BREACHED, PromiseOutcome.VOID})
_GAUGES_INTERVAL_S = 15.0
_FORGET_INTERVAL_S = 3600.0


def stage_fact(event: AftersaleEvent) -> StageFact:
    stage = Stage(event.type.removeprefix("shop.aftersale."))
    if isinstance(event, AftersaleRequestedEvent):
        d = event.data
        return StageFact(
            d.case_id,
            d.order_id,
            stage,
            d.requested_at,
            event.id,
            kind=d.kind,
            amount=d.amount,
            currency=d.currency,
            reason=d.reason,
        )
    fact = StageFact(event.data.case_id, event.data.order_id, stage, event.data.at, event.id)
    if isinstance(event, AftersaleRejectedEvent):
        return replace(fact, reason=event.data.reason)
    if isinstance(event, AftersaleReturnShippedEvent):
        return replace(fact, carrier=event.data.carrier, tracking_number=event.data.tracking_number)
    if isinstance(event, AftersaleRefundedEvent):
        return replace(
            fact, amount=event.data.amount, currency=event.data.currency, method=event.data.method
        )
    return fact


class AftersalesService:
    def __init__(self, policy: AftersalesPolicy, clock: Clock, metrics: AftersalesMetrics) -> None:
        self._policy = policy
        self._clock = clock
        self._metrics = metrics

    # --- inputs ------------------------------------------------------------------------------

    async def on_aftersale_events(self, conn: Connection, events: Sequence[AftersaleEvent]) -> None:
        facts: dict[str, list[StageFact]] = defaultdict(list)
        for event in events:
            fact = stage_fact(event)
            facts[fact.case_id].append(fact)
        await self._settle(conn, facts)

    async def on_case_timers(self, conn: Connection, timers: Sequence[DueTimer]) -> None:
        """A promise fell due, the case went quiet, or a reminder is due: look at the case."""
        await self._settle(conn, {t.subject: [] for t in timers})

    async def on_order_events(self, conn: Connection, events: Sequence[OrderEvent]) -> None:
        await store.record_orders(
            conn,
            [
                NewOrder(
                    order_id=e.data.order_id,
                    customer_id=e.data.customer.id,
                    customer_name=e.data.customer.name,
                    item_titles=tuple(i.title for i in e.data.items),
                    currency=e.data.currency,
                )
                for e in events
                if isinstance(e, OrderCreatedEvent)
            ],
            self._clock.now(),
        )

    async def on_payment_events(self, conn: Connection, events: Sequence[PaymentEvent]) -> None:
        await store.record_payments(
            conn,
            {
                e.data.order_id: e.data.method
                for e in events
                if isinstance(e, PaymentSucceededEvent)
            },
            self._clock.now(),
        )

    # --- one transaction: decide every touched case, then record it all ----------------------

    async def _settle(self, conn: Connection, facts: Mapping[str, list[StageFact]]) -> None:
        case_ids = sorted(facts)
        cases = await store.lock_cases(conn, case_ids)
        promises = await store.load_promises(conn, case_ids)
        messages = await store.load_messages(conn, case_ids)
        now = self._clock.now()
        decisions = [
            decide(
                cases.get(case_id),
                facts[case_id],
                promises=promises.get(case_id, {}),
                messages=messages.get(case_id, {}),
                policy=self._policy,
                now=now,
            )
            for case_id in case_ids
            # A timer of a case that is not stored cannot exist; skip rather than fail.
            if case_id in cases or facts[case_id]
        ]
        orders = await store.load_orders(conn, [d.case.order_id for d in decisions])
        outgoing = {
            d.case.case_id: [
                compose(
                    intent,
                    d.case,
                    order=orders.get(d.case.order_id),
                    promises={
                        **promises.get(d.case.case_id, {}),
                        **{c.promise.kind: c.promise for c in d.promises},
                    },
                    policy=self._policy,
                    now=now,
                )
                for intent in d.sends
            ]
            for d in decisions
        }
        await self._record(conn, decisions, outgoing, now)
        for d in decisions:
            with event_context(_event_of(d.applied)):
                self._observe(d, outgoing[d.case.case_id])

    async def _record(
        self,
        conn: Connection,
        decisions: Sequence[CaseDecision],
        outgoing: Mapping[str, Sequence[Outgoing]],
        now: datetime,
    ) -> None:
        await store.save_cases(conn, [d.case for d in decisions], now)
        await store.save_promises(
            conn, [(d.case.case_id, c.promise) for d in decisions for c in d.promises]
        )
        cancelled = await store.mark_cancelled(
            conn, {d.case.case_id: d.cancels for d in decisions if d.cancels}, now
        )
        # Cancels first: the outbox keeps order, and they are keyed by the order like the sends.
        commands: list[OutboxMessage] = [
            notification_command(
                CancelNotification(
                    idempotency_keys=keys, order_id=order_id, reason="aftersale_moved_on"
                ),
                source=SOURCE,
                time=now,
            )
            for order_id, keys in cancelled.items()
        ]
        rows: list[MessageRow] = []
        entries: list[LogEntry] = []
        for d in decisions:
            case = d.case
            for message in outgoing[case.case_id]:
                rows.append(
                    MessageRow(
                        case_id=case.case_id,
                        name=message.name,
                        order_id=case.order_id,
                        kind=message.kind.value,
                        decision="sent",
                        reason=None,
                        idempotency_key=message.idempotency_key,
                        template=message.template,
                        decided_at=now,
                    )
                )
                commands.append(
                    notification_command(
                        _command(case.case_id, case.order_id, message), source=SOURCE, time=now
                    )
                )
            rows += [
                MessageRow(
                    case_id=case.case_id,
                    name=skip.name,
                    order_id=case.order_id,
                    kind=NotificationKind.AFTERSALE_PROGRESS.value,
                    decision="skipped",
                    reason=skip.reason,
                    idempotency_key=None,
                    template=None,
                    decided_at=now,
                )
                for skip in d.skips
            ]
            entries += _history(d, outgoing[case.case_id], now)
        await store.record_messages(conn, rows)
        await add_to_outbox(conn, commands)
        await store.append_log(conn, entries)
        # The timers of a case always mirror its state: replace them all.
        await cancel_timers_of(conn, [d.case.case_id for d in decisions], [w.value for w in Wakeup])
        await schedule_timers(
            conn,
            [
                Timer(t.wakeup.value, f"{d.case.case_id}:{t.what}", d.case.case_id, t.due_at)
                for d in decisions
                for t in d.timers
            ],
        )

    def _observe(self, d: CaseDecision, outgoing: Sequence[Outgoing]) -> None:
        m = self._metrics
        for applied in d.applied:
            m.stage_events.labels(applied.fact.stage.value, applied.outcome.value).inc()
            if applied.outcome is not FactOutcome.ADVANCED:
                log.info(
                    "case %s: %s is %s, not announced (case is %s)",
                    d.case.case_id,
                    applied.fact.stage.value,
                    applied.outcome.value,
                    d.case.stage.value,
                )
        for duration in d.stage_durations:
            kind = duration.kind.value if duration.kind is not None else "unknown"
            m.stage_seconds.labels(duration.stage.value, kind).observe(duration.seconds)
        if d.receipt_to_refund_s is not None:
            m.receipt_to_refund.observe(d.receipt_to_refund_s)
        for change in d.promises:
            if change.promise.outcome in _COUNTED:
                m.promises.labels(change.promise.kind.value, change.promise.outcome.value).inc()
        for outcome in d.progress:
            m.promises.labels(PromiseKind.PROGRESS.value, outcome.value).inc()
        for intent in d.sends:
            if isinstance(intent, Escalation):
                m.escalations.labels(intent.promise.value).inc()
                log.info(
                    "case %s escalated to operations: %s promise broken (due %s)",
                    d.case.case_id,
                    intent.promise.value,
                    intent.due_at.isoformat(),
                )
        for message in outgoing:
            m.messages.labels(_label(message.name), "sent", "").inc()
            log.info("case %s: %s sent (%s)", d.case.case_id, message.name, message.template)
        for skip in d.skips:
            m.messages.labels(_label(skip.name), "skipped", skip.reason).inc()
        for name in d.cancels:
            m.messages.labels(_label(name), "cancelled", "case_moved_on").inc()


def _command(case_id: str, order_id: str, message: Outgoing) -> SendNotification:
    # After-sales events carry no customer: the notifier finds the recipient from the order.
    return SendNotification(
        idempotency_key=message.idempotency_key,
        kind=message.kind,
        template=message.template,
        order_id=order_id,
        case_id=case_id,
        variables=message.variables,
        meta=message.meta,
        priority=message.priority,
        message_class=MessageClass.TRANSACTIONAL,
        expires_at=message.expires_at,
        source_event_id=message.source_event_id,
        source_event_time=message.source_event_time,
    )


def _label(name: str) -> str:
    """A bounded metric label: ``still_on_it.3`` and ``escalation.refund`` lose their suffix."""
    return name.split(".", 1)[0]


def _event_of(applied: Sequence[Applied]) -> str:
    return applied[-1].fact.event_id if applied else ""


def _history(d: CaseDecision, outgoing: Sequence[Outgoing], now: datetime) -> list[LogEntry]:
    case = d.case

    def entry(what: str, detail: str = "") -> LogEntry:
        return LogEntry(case.case_id, case.order_id, now, f"case {case.case_id} {what}", detail)

    entries = [_fact_entry(a, case.stage, entry) for a in d.applied]
    entries += [_promise_entry(c, entry) for c in d.promises]
    for message in outgoing:
        if message.kind is NotificationKind.OPS_ESCALATION:
            broken, due = message.variables["promise"], message.variables["due_at"]
            entries.append(entry("escalated to operations", f"{broken} promise broken, due {due}"))
        else:
            entries.append(entry(f"message {message.name} sent", f"template {message.template}"))
    entries += [entry(f"message {s.name} skipped", s.reason) for s in d.skips]
    entries += [entry(f"message {name} cancelled", "the case moved on") for name in d.cancels]
    return entries


def _fact_entry(applied: Applied, stage: Stage, entry: Callable[..., LogEntry]) -> LogEntry:
    fact = applied.fact
    detail = f"step at {fact.at.isoformat()}, event {fact.event_id}"
    if applied.outcome is FactOutcome.ADVANCED:
        return entry(fact.stage.value, detail)
    if applied.outcome is FactOutcome.LATE:
        return entry(f"{fact.stage.value} arrived late", f"{detail}; case already {stage.value}")
    return entry(f"{fact.stage.value} again", f"{detail}; duplicate")


def _promise_entry(change: PromiseChange, entry: Callable[..., LogEntry]) -> LogEntry:
    p = change.promise
    due = p.due_at.isoformat()
    resolved = p.resolved_at.isoformat() if p.resolved_at is not None else ""
    what = f"{p.kind.value} promise"
    return {
        PromiseOutcome.OPEN: entry(f"{what} started", f"due {due}"),
        PromiseOutcome.KEPT: entry(f"{what} kept", f"done {resolved}, due {due}"),
        PromiseOutcome.BREACHED: entry(f"{what} broken", f"due {due}, noticed {resolved}"),
        PromiseOutcome.VOID: entry(f"{what} void", f"case ended another way at {resolved}"),
        PromiseOutcome.UNTRACKED: entry(
            f"{what} not tracked", f"started {p.started_at.isoformat()}, too long ago"
        ),
    }[p.outcome]


class Bookkeeping:
    """Background work over all cases: the gauges operations watch, and forgetting order
    details no case will need. Reads go to the shared database, so any replica may run it."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        policy: AftersalesPolicy,
        clock: Clock,
        metrics: AftersalesMetrics,
    ) -> None:
        self._pool = pool
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        # Like the timer loop: a clock that jumps (tests, demos) refreshes the figures at once.
        self._refresh = asyncio.Event()
        clock.on_change(self._refresh.set)

    async def gauges(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._refresh.clear()
            try:
                await self.refresh_gauges()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.debug("case gauges not refreshed: %s", exc)
            await wait_for_any(stop, _GAUGES_INTERVAL_S, self._refresh)

    async def refresh_gauges(self) -> None:
        async with self._pool().acquire() as conn:
            open_cases = await store.open_cases_by_stage(conn)
            overdue = await store.overdue_open_cases(conn)
        for stage in (Stage.REQUESTED, Stage.APPROVED, Stage.RETURN_SHIPPED, Stage.RETURN_RECEIVED):
            self._metrics.open_cases.labels(stage.value).set(open_cases.get(stage.value, 0))
        for promise in (PromiseKind.FIRST_ANSWER, PromiseKind.REFUND, PromiseKind.REPLACEMENT):
            self._metrics.overdue_cases.labels(promise.value).set(overdue.get(promise.value, 0))

    async def forget_old_orders(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self._pool().acquire() as conn:
                    cutoff = self._clock.now() - self._policy.order_facts_retention
                    forgotten = await store.forget_orders(conn, cutoff)
                if forgotten:
                    log.info("forgot the details of %d old orders without a case", forgotten)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("old order details not purged yet: %s", exc)
            await wait_for_any(stop, _FORGET_INTERVAL_S)

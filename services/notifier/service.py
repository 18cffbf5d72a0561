"""Notifier use cases: accept commands quickly, know the recipients, deliver from the queue.

Intake runs in the Kafka handler's transaction and only writes rows. Delivery is a background
loop: claim due messages and decide about them in one transaction (opt-outs, quiet hours,
contact budget), send with bounded concurrency, and write results in batches.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from contracts.codec import envelope
from contracts.envelope import CloudEvent
from contracts.notifications import (
    CancelNotificationCommand,
    ContactPreferenceCommand,
    DeliveryStatus,
    NotificationFailedEvent,
    NotificationKind,
    NotificationSentEvent,
    NotificationStatus,
    NotificationSuppressedEvent,
    SendNotificationCommand,
)
from contracts.shop import OrderCreatedEvent, OrderEvent
from contracts.topics import Topic
from followup.clock import Clock
from followup.db import Connection, is_transient
from followup.loops import wait_for_any
from followup.outbox import OutboxMessage, add_to_outbox, outbox_event
from followup.pii import scrub
from followup.values import value
from services.notifier import store
from services.notifier.breaker import BreakerState
from services.notifier.channels import Outcome, OutgoingMessage
from services.notifier.metrics import NotifierMetrics
from services.notifier.policy import (
    ANY,
    HELD_RECHECK,
    CustomerState,
    Defer,
    DueMessage,
    Fail,
    Plan,
    Recipient,
    Send,
    Suppress,
    is_ops,
    may_retry,
    plan_batch,
    retry_delay,
)
from services.notifier.routing import ChannelRouter, RouteResult
from services.notifier.settings import NotifierPolicy
from services.notifier.store import Attempt, Delivery, DeliveryEvent
from services.notifier.templates import TemplateCatalog, TemplateProblem

log = logging.getLogger(__name__)

SOURCE = "followup/notifier"

Command = SendNotificationCommand | CancelNotificationCommand | ContactPreferenceCommand

_STATUS_EVENTS: dict[DeliveryStatus, type[CloudEvent]] = {
    DeliveryStatus.SENT: NotificationSentEvent,
    DeliveryStatus.FAILED: NotificationFailedEvent,
    DeliveryStatus.SUPPRESSED: NotificationSuppressedEvent,
}
_CIRCUIT_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
_DEPTH_INTERVAL_S = 1.0
_FLUSH_BATCH = 200
_FLUSH_LINGER_S = 0.02


@value
class Finished:
    """A message's end as the status event and the metrics report it."""

    delivery: Delivery
    status: DeliveryStatus
    reason: str | None
    channel: str | None = None
    provider: str | None = None
    attempts: int = 0


@dataclass
class SendRecord:
    """What one send produced, waiting to be written with the rest of its batch."""

    delivery: Delivery
    outcome: store.Result
    attempts: list[Attempt] = field(default_factory=list)
    events: list[DeliveryEvent] = field(default_factory=list)
    finished: Finished | None = None


@value
class Claimed:
    delivery: Delivery
    plan: Send
    recipient: Recipient | None


class NotifierService:
    def __init__(
        self,
        *,
        policy: NotifierPolicy,
        clock: Clock,
        catalog: TemplateCatalog,
        metrics: NotifierMetrics,
        pool: Callable[[], asyncpg.Pool],
        dry_run: bool,
        poll_interval_s: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._catalog = catalog
        self._metrics = metrics
        self._pool = pool
        self._dry_run = dry_run
        self._poll_interval_s = poll_interval_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._wakeup = asyncio.Event()
        self._depth_updated = 0.0
        self._next_reclaim = 0.0  # time.monotonic(): leases are not on the business clock
        self._refill_at = max(1, min(policy.claim_batch, policy.concurrency) // 4)
        clock.on_change(self.wake)

    def wake(self) -> None:
        self._wakeup.set()

    # --- intake: runs in the Kafka handler's transaction, so it only writes rows ------------

    async def on_commands(self, conn: Connection, events: Sequence[Command]) -> None:
        now = self._clock.now()
        sends = [(e.data, e.time) for e in events if isinstance(e, SendNotificationCommand)]
        accepted = await store.accept(
            conn,
            sends,
            now,
            hold_for_recipient=self._policy.hold_for_recipient,
            recheck=HELD_RECHECK,
        )
        accepted_keys = {d.idempotency_key for d in accepted}
        for command, _ in sends:
            if command.idempotency_key not in accepted_keys:
                self._metrics.accepted.labels(command.kind.value, "duplicate").inc()
        held = [d for d in accepted if d.status == "held"]
        for delivery in accepted:
            self._metrics.accepted.labels(delivery.kind, delivery.status).inc()
        await store.log_events(
            conn,
            [
                DeliveryEvent(
                    d.message_id,
                    now,
                    "held",
                    f"waiting for order {d.order_id} to learn the recipient, until "
                    f"{_hold_end(d, self._policy).isoformat()}",
                )
                for d in held
            ],
        )
        cancels = [e.data for e in events if isinstance(e, CancelNotificationCommand)]
        await store.remember_cancellations(conn, cancels, now)
        # Commands a remembered cancellation covered were stored as suppressed by accept();
        # the cancellations of this batch apply to whatever is still waiting.
        suppressed = [d for d in accepted if d.status == "suppressed"]
        suppressed += await store.suppress_cancelled(
            conn,
            now,
            keys=[k for c in cancels for k in c.idempotency_keys],
            orders=[c.order_id for c in cancels if c.order_id],
        )
        await self._publish(
            conn, [Finished(d, DeliveryStatus.SUPPRESSED, d.reason) for d in suppressed]
        )
        await self._apply_preferences(
            conn, [e for e in events if isinstance(e, ContactPreferenceCommand)]
        )

    async def _apply_preferences(
        self, conn: Connection, commands: Sequence[ContactPreferenceCommand]
    ) -> None:
        changes = [
            (
                store.OptOut(
                    customer_id=c.data.customer_id,
                    channel=c.data.channel or ANY,
                    message_class=c.data.message_class.value if c.data.message_class else ANY,
                    source=c.data.source or c.source,
                    at=c.time,
                ),
                c.data.opted_out,
            )
            for c in commands
        ]
        await store.set_opt_outs(conn, changes)
        for opt_out, out in changes:
            self._metrics.preferences.labels(
                opt_out.channel, opt_out.message_class, "opt_out" if out else "opt_in"
            ).inc()

    async def on_order_events(self, conn: Connection, events: Sequence[OrderEvent]) -> None:
        """order.created says who the customer is: remember their contact data and release
        the messages that waited to learn it."""
        created = [e for e in events if isinstance(e, OrderCreatedEvent)]
        if not created:
            return
        await store.record_recipients(
            conn,
            [
                (
                    Recipient(
                        customer_id=e.data.customer.id,
                        name=e.data.customer.name,
                        locale=e.data.customer.locale,
                        timezone=e.data.customer.timezone,
                        phone=e.data.customer.phone,
                        email=str(e.data.customer.email) if e.data.customer.email else None,
                    ),
                    e.time,
                )
                for e in created
            ],
            [(e.data.order_id, e.data.customer.id, e.time) for e in created],
        )
        now = self._clock.now()
        released = await store.release_held(conn, [e.data.order_id for e in created], now)
        await self._released(conn, released, now)

    async def _released(
        self, conn: Connection, released: Sequence[Delivery], now: datetime
    ) -> None:
        await store.log_events(
            conn,
            [
                DeliveryEvent(d.message_id, now, "released", f"recipient known: {d.customer_id}")
                for d in released
            ],
        )
        for delivery in released:
            self._metrics.decisions.labels(delivery.kind, "released", "order_known").inc()

    # --- delivery: a background loop, never inside a Kafka handler ---------------------------

    async def run_worker(self, stop: asyncio.Event, router: ChannelRouter) -> None:
        """Claim while there is room for more sends; write results in batches meanwhile.

        Several claims run side by side (``claimers``): a claim is a transaction of several
        statements, and with one claimer the sends of the last claim were done long before
        the next one came back from PostgreSQL (bench/: a claim took 135 ms p50 under load,
        two thirds of the delivery time)."""
        results: list[SendRecord] = []
        ready = asyncio.Event()

        async def send(item: Claimed) -> None:
            results.append(await self._send(item, router))
            ready.set()

        sends = _Sends(self._policy.concurrency, self._refill_at, send)
        # Set once the claim loops are over, stopped or failed: the results still coming in
        # are written before this returns.
        claiming_over = asyncio.Event()
        flusher = asyncio.create_task(self._flush_loop(claiming_over, results, ready, sends.tasks))
        try:
            async with asyncio.TaskGroup() as claims:
                for _ in range(self._policy.claimers):
                    claims.create_task(self._claim_loop(stop, router, sends))
        finally:
            if sends.tasks:
                await asyncio.wait(
                    sends.tasks, timeout=self._policy.request_timeout.total_seconds()
                )
            claiming_over.set()
            ready.set()
            await flusher

    async def _claim_loop(
        self, stop: asyncio.Event, router: ChannelRouter, sends: "_Sends"
    ) -> None:
        while not stop.is_set():
            self._wakeup.clear()
            # Claim in worthwhile batches: one transaction per finished send would cost more
            # than the sends themselves.
            if not await sends.wait_for_room(stop, self._poll_interval_s):
                continue
            limit = min(sends.room(), self._policy.claim_batch)
            sends.reserved += limit
            try:
                claimed = await self.claim(router, limit)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("delivery queue unavailable, waiting: %s", exc)
                await wait_for_any(stop, 1.0)
                continue
            finally:
                sends.reserved -= limit
            for item in claimed:
                sends.start(item)
            self._publish_circuits(router)
            if len(claimed) == limit:
                await asyncio.sleep(0)  # let the sends start before claiming more
                continue
            # Woken by new or released messages (NOTIFY) and by the clock; messages deferred
            # to a later time are found by the next poll, at most TIMER_POLL_INTERVAL_S late.
            await wait_for_any(stop, self._poll_interval_s, self._wakeup)

    async def _observe_queue(self) -> None:
        if time.monotonic() - self._depth_updated < _DEPTH_INTERVAL_S:
            return
        self._depth_updated = time.monotonic()
        async with self._pool().acquire() as conn:
            for state, count in (await store.queue_depth(conn)).items():
                self._metrics.queue_depth.labels(state).set(count)

    async def _flush_loop(
        self,
        claiming_over: asyncio.Event,
        results: list[SendRecord],
        ready: asyncio.Event,
        in_flight: set[asyncio.Task[None]],
    ) -> None:
        delay = 0.1
        while True:
            if not results:
                if claiming_over.is_set() and not in_flight:
                    return
                ready.clear()
                try:
                    await self._observe_queue()
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                await wait_for_any(claiming_over, self._poll_interval_s, ready)
                continue
            if len(results) < _FLUSH_BATCH and in_flight and not claiming_over.is_set():
                # Let results gather: one transaction for many sends, not one each.
                await wait_for_any(claiming_over, _FLUSH_LINGER_S)
            batch = results[:_FLUSH_BATCH]
            try:
                await self._write(batch)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # Results stay in memory and are written when the database is back; if this
                # process dies first, the leases run out and the messages are sent again.
                log.warning("cannot record %d results yet: %s", len(batch), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            del results[: len(batch)]

    async def claim(self, router: ChannelRouter, limit: int) -> list[Claimed]:
        """Claim due messages and decide about each in the same transaction; returns those
        to send now. Deferrals, merges, suppressions and failures are written here."""
        now = self._clock.now()
        window = self._policy.contact_budget.window
        async with self._pool().acquire() as conn, conn.transaction():
            if time.monotonic() >= self._next_reclaim:
                # Not on every claim: a lease is long, and the claim path is latency-bound.
                self._next_reclaim = time.monotonic() + self._policy.lease.total_seconds() / 4
                if reclaimed := await store.reclaim_expired_leases(conn):
                    log.warning("%d messages of a stopped worker are due again", reclaimed)
            released = await store.release_resolvable(conn, now)
            await self._released(conn, released, now)
            claimed = await store.claim_due(conn, now, limit, self._policy.lease)
            if not claimed:
                return []
            customers = [d.customer_id for d in claimed if d.customer_id and not is_ops(d.kind)]
            recipients, opt_outs, contacts = await store.customer_facts(
                conn, customers, since=now - window, excluding=[d.message_id for d in claimed]
            )
            states = {
                c: CustomerState(
                    recipients.get(c), frozenset(opt_outs.get(c, ())), list(contacts.get(c, []))
                )
                for c in set(customers)
            }
            by_id = {str(d.message_id): d for d in claimed}
            plans = plan_batch(
                [_due(d, self._policy) for d in claimed],
                states,
                now,
                self._policy,
                router.configured,
            )
            return await self._apply_plans(conn, now, plans, by_id, states)

    async def _apply_plans(
        self,
        conn: Connection,
        now: datetime,
        plans: Sequence[tuple[DueMessage, Plan]],
        by_id: dict[str, Delivery],
        states: dict[str, CustomerState],
    ) -> list[Claimed]:
        sending: list[Claimed] = []
        deferrals: list[tuple[Delivery, Defer]] = []
        ended: list[tuple[Delivery, Suppress | Fail]] = []
        events: list[DeliveryEvent] = []
        for due, plan in plans:
            delivery = by_id[due.message_id]
            if isinstance(plan, Send):
                state = states.get(delivery.customer_id or "")
                sending.append(Claimed(delivery, plan, state.recipient if state else None))
                events += [
                    DeliveryEvent(delivery.message_id, now, "skipped_channel", skipped)
                    for skipped in plan.skipped
                ]
            elif isinstance(plan, Defer) and plan.reason == "waiting_for_order":
                deferrals.append((delivery, plan))  # still held: looked at again, quietly
            elif isinstance(plan, Defer):
                deferrals.append((delivery, plan))
                events.append(
                    DeliveryEvent(
                        delivery.message_id,
                        now,
                        "deferred",
                        f"{plan.reason} until {plan.until.isoformat()}",
                    )
                )
                self._metrics.decisions.labels(delivery.kind, "deferred", plan.reason).inc()
            else:
                ended.append((delivery, plan))
        await store.reserve_contacts(
            conn,
            [
                (c.delivery.message_id, c.delivery.customer_id)
                for c in sending
                if c.delivery.customer_id and not is_ops(c.delivery.kind)
            ],
            now,
        )
        await store.defer(conn, [(d.message_id, p.until, p.reason) for d, p in deferrals])
        finished = [
            Finished(
                d,
                DeliveryStatus.SUPPRESSED if isinstance(p, Suppress) else DeliveryStatus.FAILED,
                p.reason,
                attempts=d.attempts,
            )
            for d, p in ended
        ]
        await store.finish(
            conn,
            [store.Result(f.delivery.message_id, f.status.value, f.reason) for f in finished],
            now,
        )
        merged = await store.merge_superseded(
            conn, [d.message_id for d, p in deferrals if p.reason == "contact_budget"], now
        )
        for delivery, into in merged:
            events.append(DeliveryEvent(delivery.message_id, now, "merged", f"into {into}"))
            self._metrics.decisions.labels(delivery.kind, "merged", "contact_budget").inc()
        finished += [
            Finished(d, DeliveryStatus.SUPPRESSED, f"merged: superseded by message {into}")
            for d, into in merged
        ]
        await store.log_events(conn, events)
        await self._publish(conn, finished)
        return sending

    async def _send(self, item: Claimed, router: ChannelRouter) -> SendRecord:
        delivery, plan = item.delivery, item.plan
        attempt = delivery.attempts + 1
        try:
            rendered = self._catalog.render(
                delivery.template,
                plan.locale,
                plan.timezone,
                delivery.variables,
                sms="sms" in plan.channels,
            )
        except TemplateProblem as exc:
            reason = f"template: {exc}"
            return SendRecord(
                delivery,
                store.Result(delivery.message_id, "failed", reason),
                finished=Finished(
                    delivery, DeliveryStatus.FAILED, reason, attempts=delivery.attempts
                ),
            )
        recipient = item.recipient
        message = OutgoingMessage(
            message_id=str(delivery.message_id),
            idempotency_key=delivery.idempotency_key,
            kind=delivery.kind,
            order_id=delivery.order_id,
            customer_id=delivery.customer_id,
            case_id=delivery.case_id,
            locale=rendered.locale,
            subject=rendered.subject,
            text=rendered.text,
            sms=rendered.sms,
            meta=delivery.meta,
            created_at=delivery.accepted_at.astimezone(ZoneInfo(plan.timezone)).isoformat(),
            phone=recipient.phone if recipient else None,
            email=recipient.email if recipient else None,
            customer_name=recipient.name if recipient else None,
        )
        if self._dry_run:
            log.info(
                "dry run, not sent: %s via %s: %s | %s",
                delivery.kind,
                ", ".join(plan.channels),
                message.subject,
                _without_personal_data(message.text, delivery, recipient),
                extra={"event_id": delivery.source_event_id},
            )
            return SendRecord(
                delivery,
                store.Result(delivery.message_id, "suppressed", "dry_run"),
                finished=Finished(
                    delivery, DeliveryStatus.SUPPRESSED, "dry_run", attempts=delivery.attempts
                ),
            )
        route = await router.deliver(message, plan.channels)
        attempts = [
            Attempt(
                delivery.message_id,
                attempt,
                a.channel,
                a.provider,
                a.outcome,
                a.detail,
                a.started_at,
                a.duration_ms,
            )
            for a in route.attempts
        ]
        for a in route.attempts:
            self._metrics.provider_calls.labels(a.channel, a.provider, a.outcome).inc()
        if route.first_call_at is not None and delivery.attempts == 0:
            start = max(delivery.accepted_at, delivery.not_before or delivery.accepted_at)
            self._metrics.queue_wait.labels(delivery.kind).observe(
                max(0.0, (route.first_call_at - start).total_seconds())
            )
        return self._record(delivery, route, attempts, attempt)

    def _record(
        self, delivery: Delivery, route: RouteResult, attempts: list[Attempt], attempt: int
    ) -> SendRecord:
        now = self._clock.now()
        made = delivery.attempts + (1 if attempts else 0)

        def outcome(status: str, reason: str | None, at: datetime | None = None) -> store.Result:
            return store.Result(
                delivery.message_id,
                status,
                reason,
                channel=route.channel,
                provider=route.provider,
                attempted=bool(attempts),
                next_attempt_at=at,
                dead_channels=route.dead_channels,
                first_call_at=route.first_call_at,
            )

        if route.outcome is Outcome.DELIVERED:
            self._observe_latency(delivery)
            return SendRecord(
                delivery,
                outcome("sent", None),
                attempts,
                finished=Finished(
                    delivery, DeliveryStatus.SENT, None, route.channel, route.provider, made
                ),
            )
        if route.outcome is Outcome.RETRY and may_retry(
            attempt, delivery.accepted_at, now, self._policy
        ):
            self._metrics.retries.labels(delivery.kind, route.channel or "none").inc()
            at = now + retry_delay(
                attempt, self._policy.retry_base, self._policy.retry_max, self._rng
            )
            return SendRecord(
                delivery,
                outcome("pending", route.detail, at),
                attempts,
                [
                    DeliveryEvent(
                        delivery.message_id, now, "retry", f"{route.detail}; next {at.isoformat()}"
                    )
                ],
            )
        reason = (
            route.detail
            if route.outcome is Outcome.PERMANENT
            else f"gave_up: {made} attempts, the last: {route.detail}"
        )
        return SendRecord(
            delivery,
            outcome("failed", reason),
            attempts,
            finished=Finished(
                delivery, DeliveryStatus.FAILED, reason, route.channel, route.provider, made
            ),
        )

    async def _write(self, records: Sequence[SendRecord]) -> None:
        now = self._clock.now()
        async with self._pool().acquire() as conn, conn.transaction():
            await store.log_attempts(conn, [a for r in records for a in r.attempts])
            await store.finish(conn, [r.outcome for r in records], now)
            await store.log_events(conn, [e for r in records for e in r.events])
            finished = [r.finished for r in records if r.finished is not None]
            # A cancellation that arrived while a try was in flight applies to the retry.
            retried = [r.delivery.message_id for r in records if r.outcome.status == "pending"]
            cancelled = await store.suppress_cancelled(conn, now, message_ids=retried)
            finished += [
                Finished(d, DeliveryStatus.SUPPRESSED, d.reason, attempts=d.attempts)
                for d in cancelled
            ]
            await self._publish(conn, finished)

    async def _publish(self, conn: Connection, finished: Sequence[Finished]) -> None:
        now = self._clock.now()
        messages: list[OutboxMessage] = []
        for f in finished:
            delivery = f.delivery
            self._metrics.outcomes.labels(
                delivery.kind, f.channel or "none", f.status.value, _reason_label(f.reason)
            ).inc()
            # A message sent is in the delivery log, its status event and the metrics; a line
            # for each at INFO would cost ~80 µs of JSON and masking apiece (bench/) for
            # nothing new. What went otherwise is worth a look.
            log.log(
                logging.DEBUG if f.status is DeliveryStatus.SENT else logging.INFO,
                "message %s (%s) %s%s",
                delivery.message_id,
                delivery.kind,
                f.status.value,
                f": {scrub(f.reason)}" if f.reason else "",
                extra={"event_id": delivery.source_event_id},
            )
            data = NotificationStatus(
                message_id=str(delivery.message_id),
                idempotency_key=delivery.idempotency_key,
                kind=NotificationKind(delivery.kind),
                status=f.status,
                reason=f.reason,
                channel=f.channel,
                provider=f.provider,
                attempts=f.attempts,
                customer_id=delivery.customer_id,
                order_id=delivery.order_id,
                case_id=delivery.case_id,
                at=now,
            )
            event = envelope(_STATUS_EVENTS[f.status], data, source=SOURCE, time=now)
            key = delivery.customer_id or delivery.order_id or delivery.case_id
            messages.append(outbox_event(Topic.NOTIFICATION_STATUS, key, event))
        await add_to_outbox(conn, messages)

    def _observe_latency(self, delivery: Delivery) -> None:
        now = self._clock.now()
        if delivery.source_event_time is not None:
            self._metrics.event_to_send.labels(delivery.kind).observe(
                max(0.0, (now - delivery.source_event_time).total_seconds())
            )
        self._metrics.command_to_send.labels(delivery.kind).observe(
            max(0.0, (now - delivery.command_time).total_seconds())
        )

    def _publish_circuits(self, router: ChannelRouter) -> None:
        for (channel, provider), state in router.breaker_states().items():
            self._metrics.circuit_state.labels(channel, provider).set(_CIRCUIT_VALUE[state])


class _Sends:
    """The sends under way, shared by the claim loops: a claim reserves its room before it
    goes to the database, so claims side by side never start more than ``concurrency``."""

    def __init__(
        self,
        concurrency: int,
        refill_at: int,
        send: Callable[[Claimed], Coroutine[object, object, None]],
    ) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.reserved = 0
        self._concurrency = concurrency
        self._refill_at = refill_at
        self._send = send
        self._freed = asyncio.Event()

    def room(self) -> int:
        return self._concurrency - len(self.tasks) - self.reserved

    async def wait_for_room(self, stop: asyncio.Event, poll_interval_s: float) -> bool:
        """True when there is room for a worthwhile claim; otherwise waits for sends to
        finish (or the poll interval) and returns False, to be asked again."""
        if self.room() >= self._refill_at:
            return True
        self._freed.clear()
        await wait_for_any(stop, poll_interval_s, self._freed)
        return False

    def start(self, item: Claimed) -> None:
        task = asyncio.create_task(self._send(item))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: "asyncio.Task[None]") -> None:
        self.tasks.discard(task)
        if self.room() >= self._refill_at:
            self._freed.set()


def _hold_end(d: Delivery, policy: NotifierPolicy) -> datetime:
    end = d.accepted_at + policy.hold_for_recipient
    return min(end, d.expires_at) if d.expires_at is not None else end


def _due(d: Delivery, policy: NotifierPolicy) -> DueMessage:
    return DueMessage(
        message_id=str(d.message_id),
        kind=d.kind,
        message_class=d.message_class,
        priority=d.priority,
        customer_id=d.customer_id,
        order_id=d.order_id,
        held=d.status == "held",
        locale=d.locale,
        timezone=d.timezone,
        expires_at=d.expires_at,
        accepted_at=d.accepted_at,
        dead_channels=frozenset(d.dead_channels),
        hold_ends_at=_hold_end(d, policy) if d.status == "held" else None,
    )


def _without_personal_data(text: str, delivery: Delivery, recipient: Recipient | None) -> str:
    """The dry-run log shows the message as written, minus who it is for."""
    names = {recipient.name} if recipient and recipient.name else set()
    names |= {
        str(v)
        for k, v in delivery.variables.items()
        if "name" in k and isinstance(v, str) and v.strip()
    }
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "[name]")
    return scrub(text)


def _reason_label(reason: str | None) -> str:
    """A bounded label: the reason's category, not its free text (which may name a customer)."""
    if not reason:
        return ""
    category = reason.split(":", 1)[0].strip().lower()
    if "/" in category:  # "sms/twilio" from a provider refusal: keep the channel only
        category = category.split("/", 1)[0] + "_refused"
    return category.replace(" ", "_")[:40]

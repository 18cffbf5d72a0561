"""Notifier use cases: accept commands quickly, deliver from the queue with bounded concurrency."""

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

import asyncpg

from contracts.codec import envelope
from contracts.envelope import CloudEvent
from contracts.notifications import (
    CancelNotificationCommand,
    DeliveryStatus,
    NotificationFailedEvent,
    NotificationKind,
    NotificationSentEvent,
    NotificationStatus,
    NotificationSuppressedEvent,
    SendNotificationCommand,
)
from contracts.topics import Topic
from followup.clock import Clock
from followup.db import Connection
from followup.loops import wait_for_any
from followup.outbox import OutboxMessage, add_to_outbox, outbox_event
from services.notifier import store
from services.notifier.channels import Channel, Outcome, OutgoingMessage, SendResult
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierPolicy
from services.notifier.store import Attempt, Delivery
from services.notifier.templates import TemplateCatalog, TemplateProblem

log = logging.getLogger(__name__)

SOURCE = "followup/notifier"

Command = SendNotificationCommand | CancelNotificationCommand

_STATUS_EVENTS: dict[DeliveryStatus, type[CloudEvent]] = {
    DeliveryStatus.SENT: NotificationSentEvent,
    DeliveryStatus.FAILED: NotificationFailedEvent,
    DeliveryStatus.SUPPRESSED: NotificationSuppressedEvent,
}


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
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._catalog = catalog
        self._metrics = metrics
        self._pool = pool
        self._dry_run = dry_run
        self._wakeup = asyncio.Event()
        clock.on_change(self.wake)

    def wake(self) -> None:
        self._wakeup.set()

    # --- intake: runs in the Kafka handler's transaction, so it only writes rows ------------

    async def on_commands(self, conn: Connection, events: Sequence[Command]) -> None:
        now = self._clock.now()
        sends = [(e.data, e.time) for e in events if isinstance(e, SendNotificationCommand)]
        cancels = [e.data for e in events if isinstance(e, CancelNotificationCommand)]
        accepted = await store.accept(
            conn,
            sends,
            now,
            default_locale=self._policy.default_locale,
            default_timezone=self._policy.default_timezone,
        )
        for delivery in accepted:
            self._metrics.accepted.labels(delivery.kind, "accepted").inc()
        accepted_keys = {d.idempotency_key for d in accepted}
        for command, _ in sends:
            if command.idempotency_key not in accepted_keys:
                self._metrics.accepted.labels(command.kind.value, "duplicate").inc()
        await store.remember_cancellations(conn, cancels, now)
        suppressed = await store.suppress_cancelled(
            conn,
            now,
            message_ids=[d.message_id for d in accepted],
            keys=[k for c in cancels for k in c.idempotency_keys],
            orders=[c.order_id for c in cancels if c.order_id],
        )
        await self._publish_statuses(
            conn, [(d, DeliveryStatus.SUPPRESSED, d.reason, None, None) for d in suppressed]
        )

    # --- delivery: a background loop, never inside a Kafka handler ---------------------------

    async def run_worker(self, stop: asyncio.Event, channels: Sequence[Channel]) -> None:
        while not stop.is_set():
            self._wakeup.clear()
            if await self.deliver_due(channels) == self._policy.concurrency:
                continue
            async with self._pool().acquire() as conn:
                due = await store.next_due(conn)
                self._metrics.queue_depth.set(await store.queue_depth(conn))
            wait_s = self._policy.lease.total_seconds()
            if due is not None:
                wait_s = min(wait_s, max(0.0, (due - self._clock.now()).total_seconds()))
            await wait_for_any(stop, wait_s, self._wakeup)

    async def deliver_due(self, channels: Sequence[Channel]) -> int:
        now = self._clock.now()
        async with self._pool().acquire() as conn, conn.transaction():
            claimed = await store.claim_due(
                conn, now, self._policy.concurrency, now + self._policy.lease
            )
        await asyncio.gather(*(self._deliver(d, channels) for d in claimed))
        return len(claimed)

    async def _deliver(self, delivery: Delivery, channels: Sequence[Channel]) -> None:
        now = self._clock.now()
        if delivery.expires_at is not None and now >= delivery.expires_at:
            await self._finish(delivery, DeliveryStatus.SUPPRESSED, reason="expired")
            return
        try:
            rendered = self._catalog.render(
                delivery.template, delivery.locale, delivery.timezone, delivery.variables
            )
        except TemplateProblem as exc:
            await self._finish(delivery, DeliveryStatus.FAILED, reason=f"template: {exc}")
            return
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
            created_at=delivery.accepted_at.astimezone(ZoneInfo(delivery.timezone)).isoformat(),
        )
        if self._dry_run:
            log.info("dry run, not sent: [%s] %s | %s", message.kind, message.subject, message.text)
            await self._finish(delivery, DeliveryStatus.SUPPRESSED, reason="dry_run")
            return
        attempts: list[Attempt] = []
        result = SendResult(Outcome.PERMANENT, "none", "no channel configured")
        channel_name: str | None = None
        for channel in channels:
            started_at = self._clock.now()
            started = time.perf_counter()
            result = await channel.send(message)
            elapsed = time.perf_counter() - started
            self._metrics.provider_latency.labels(channel.name, result.provider).observe(elapsed)
            attempts.append(
                Attempt(
                    delivery.message_id,
                    delivery.attempts,
                    channel.name,
                    result.provider,
                    result.outcome.value,
                    result.detail,
                    started_at,
                    elapsed * 1000,
                )
            )
            channel_name = channel.name
            if result.outcome is Outcome.DELIVERED:
                break
        if result.outcome is Outcome.DELIVERED:
            self._observe_latency(delivery)
            await self._finish(
                delivery,
                DeliveryStatus.SENT,
                reason=None,
                channel=channel_name,
                attempts=attempts,
                provider=result.provider,
            )
        elif result.outcome is Outcome.RETRY and self._may_retry(delivery):
            await self._retry_later(delivery, result, channel_name or "none", attempts)
        else:
            await self._finish(
                delivery,
                DeliveryStatus.FAILED,
                reason=result.detail,
                channel=channel_name,
                attempts=attempts,
                provider=result.provider,
            )

    def _may_retry(self, delivery: Delivery) -> bool:
        age = self._clock.now() - delivery.accepted_at
        return delivery.attempts < self._policy.max_attempts and age < self._policy.max_age

    def _backoff(self, attempts: int) -> timedelta:
        """Exponential with full jitter, so retries of many messages do not arrive together."""
        ceiling = min(
            self._policy.retry_max.total_seconds(),
            self._policy.retry_base.total_seconds() * 2 ** (attempts - 1),
        )
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311

    async def _retry_later(
        self, delivery: Delivery, result: SendResult, channel: str, attempts: Sequence[Attempt]
    ) -> None:
        self._metrics.retries.labels(channel).inc()
        now = self._clock.now()
        async with self._pool().acquire() as conn, conn.transaction():
            await store.log_attempts(conn, attempts)
            await store.retry_later(
                conn,
                delivery.message_id,
                at=now + self._backoff(delivery.attempts),
                reason=result.detail,
            )
            # A cancellation that arrived while this attempt was in flight applies now.
            suppressed = await store.suppress_cancelled(
                conn, now, message_ids=[delivery.message_id]
            )
            await self._publish_statuses(
                conn, [(d, DeliveryStatus.SUPPRESSED, d.reason, None, None) for d in suppressed]
            )

    async def _finish(
        self,
        delivery: Delivery,
        status: DeliveryStatus,
        *,
        reason: str | None,
        channel: str | None = None,
        attempts: Sequence[Attempt] = (),
        provider: str | None = None,
    ) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            await store.log_attempts(conn, attempts)
            await store.finish(
                conn,
                delivery.message_id,
                status=status.value,
                reason=reason,
                channel=channel,
                now=self._clock.now(),
            )
            await self._publish_statuses(conn, [(delivery, status, reason, channel, provider)])

    async def _publish_statuses(
        self,
        conn: Connection,
        outcomes: Sequence[tuple[Delivery, DeliveryStatus, str | None, str | None, str | None]],
    ) -> None:
        now = self._clock.now()
        messages: list[OutboxMessage] = []
        for delivery, status, reason, channel, provider in outcomes:
            self._metrics.outcomes.labels(
                delivery.kind, channel or "none", status.value, _reason_label(reason)
            ).inc()
            log.info(
                "message %s (%s) %s%s",
                delivery.message_id,
                delivery.kind,
                status.value,
                f": {reason}" if reason else "",
                extra={"event_id": delivery.source_event_id},
            )
            data = NotificationStatus(
                message_id=str(delivery.message_id),
                idempotency_key=delivery.idempotency_key,
                kind=NotificationKind(delivery.kind),
                status=status,
                reason=reason,
                channel=channel,
                provider=provider,
                attempts=delivery.attempts,
                customer_id=delivery.customer_id,
                order_id=delivery.order_id,
                case_id=delivery.case_id,
                at=now,
            )
            event = envelope(_STATUS_EVENTS[status], data, source=SOURCE, time=now)
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


def _reason_label(reason: str | None) -> str:
    """A bounded label: the reason's category, not its free text (which may name a customer)."""
    if not reason:
        return ""
    return reason.split(":", 1)[0].strip().lower().replace(" ", "_")[:40]

"""What the notifier is told to send: decisions of ``policy.py`` turned into commands.

Shipment events carry no customer, so commands name the order and leave customer, locale and
timezone to the notifier (it resolves them from shop.orders). Variables are machine values
(ISO times and dates) that the templates format in the customer's timezone; ``meta`` carries
the rule and its evidence so staff can see why a message was sent.
"""

from datetime import datetime, timedelta
from typing import Any

from contracts.notifications import MessageClass, NotificationKind, Priority, SendNotification
from services.logistics.policy import (
    Episode,
    Message,
    Order,
    Problem,
    Resolution,
    Rule,
    Shipment,
    Stage,
    delivery_deadline,
    expected_delivery,
)
from services.logistics.settings import LogisticsPolicy, Severity

# Filled in from the order (``with_items``) when its order.created has been seen.
NO_ITEMS: dict[str, Any] = {"item_title": None, "item_count": 0}

_PRIORITY = {Severity.RED: Priority.CRITICAL, Severity.YELLOW: Priority.HIGH}


def _kind(rule: Rule) -> NotificationKind:
    if rule is Rule.DISPATCH_LATE:
        return NotificationKind.DISPATCH_DELAY
    if rule.is_carrier_exception:
        return NotificationKind.SHIPMENT_EXCEPTION
    return NotificationKind.SHIPMENT_DELAY


def template_of(rule: Rule) -> str:
    """``dispatch_delay``, ``shipment_delay.stalled``, ``shipment_exception.lost`` …; the
    notifier falls back on the dotted parts, so a shop may override only some of them."""
    if rule is Rule.DISPATCH_LATE:
        return "dispatch_delay"
    return f"{_kind(rule).value}.{rule.value}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _still_ahead(estimate: str | None, now: datetime, timezone: str) -> str | None:
    if estimate is None or delivery_deadline(estimate, timezone) <= now:
        return None
    return estimate


def _meta(
    message: Message, episode: Episode, subject: str, extra: dict[str, Any]
) -> dict[str, Any]:
    problem = message.problem
    return {
        "rule": problem.rule.value if problem else None,
        "severity": problem.severity.value if problem else Severity.GREEN.value,
        "stage": message.stage.value,
        "episode": episode.number,
        "followup": episode.followups,
        "subject": subject,
        "problems": [p.rule.value for p in message.problems],
        "evidence": dict(problem.evidence) if problem else {},
        **extra,
    }


def shipment_variables(
    shipment: Shipment, episode: Episode, now: datetime, policy: LogisticsPolicy
) -> dict[str, Any]:
    anchor = shipment.anchor
    return {
        "order_id": shipment.order_id,
        **NO_ITEMS,
        "shipment_id": shipment.shipment_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "status": shipment.last_status.value if shipment.last_status else None,
        "location": shipment.last_location,
        "destination_city": shipment.destination_city,
        "dispatched_at": _iso(shipment.dispatched_at),
        "last_scan_at": _iso(shipment.last_scan_at),
        "hours_without_scan": int((now - anchor).total_seconds() // 3600) if anchor else None,
        "promised_delivery": shipment.promised_delivery,
        # "The new expected date when known": the carrier's revision, if still ahead.
        "expected_delivery": _still_ahead(shipment.revised_delivery, now, policy.timezone),
        "failed_attempts": len(shipment.failed_attempts),
        "followup": episode.followups,
        "next_update_at": _iso(episode.next_update_at),
        "carrier_asked": policy.promise_expedite,
    }


def shipment_message(
    shipment: Shipment,
    episode: Episode,
    message: Message,
    now: datetime,
    policy: LogisticsPolicy,
) -> SendNotification:
    """The customer's message for one step of a shipment's episode."""
    variables = shipment_variables(shipment, episode, now, policy)
    if message.stage is Stage.CLOSING:
        resolution = message.resolution or Resolution.BACK_ON_TRACK
        kind = NotificationKind.SHIPMENT_UPDATE
        template = f"shipment_update.{resolution.value}"
        ahead = _still_ahead(expected_delivery(shipment), now, policy.timezone)
        variables |= {"after_delay": True, "expected_delivery": ahead}
        extra: dict[str, Any] = {
            "resolution": resolution.value,
            "evidence": {
                "last_scan_at": _iso(shipment.last_scan_at),
                "status": variables["status"],
                "delivered_at": _iso(shipment.delivered_at),
            },
        }
    else:
        assert message.problem is not None  # noqa: S101 - only closing messages lack one
        kind = _kind(message.problem.rule)
        template = template_of(message.problem.rule)
        extra = {}
    return _episode_command(
        kind,
        template,
        subject=shipment.shipment_id,
        order_id=shipment.order_id,
        message=message,
        episode=episode,
        variables=variables,
        extra=extra,
        expires_at=now + policy.followup_every,
        source=(shipment.source_event_id, shipment.source_event_time),
    )


def pickup_message(
    shipment: Shipment, episode: Episode, now: datetime, policy: LogisticsPolicy
) -> SendNotification:
    """Ready for pickup and no problem open: a helpful notice, not an apology."""
    return SendNotification(
        idempotency_key=f"shipment_update:{shipment.shipment_id}:pickup",
        kind=NotificationKind.SHIPMENT_UPDATE,
        template="shipment_update.pickup",
        order_id=shipment.order_id,
        variables=shipment_variables(shipment, episode, now, policy) | {"after_delay": False},
        meta={
            "rule": "available_for_pickup",
            "severity": Severity.GREEN.value,
            "stage": "pickup",
            "subject": shipment.shipment_id,
            "evidence": {
                "scanned_at": _iso(shipment.last_scan_at),
                "location": shipment.last_location,
            },
        },
        priority=Priority.HIGH,
        message_class=MessageClass.TRANSACTIONAL,
        expires_at=now + policy.followup_every,
        source_event_id=shipment.source_event_id,
        source_event_time=shipment.source_event_time,
    )


def progress_message(
    shipment: Shipment, episode: Episode, now: datetime, policy: LogisticsPolicy
) -> SendNotification:
    """On time and moving: "your parcel is in <city>, expected <date>" (optional)."""
    scanned = shipment.last_scan_at or now
    return SendNotification(
        idempotency_key=(
            f"shipment_update:{shipment.shipment_id}:progress:{int(scanned.timestamp())}"
        ),
        kind=NotificationKind.SHIPMENT_UPDATE,
        template="shipment_update.progress",
        order_id=shipment.order_id,
        variables=shipment_variables(shipment, episode, now, policy)
        | {"expected_delivery": _still_ahead(expected_delivery(shipment), now, policy.timezone)},
        meta={
            "rule": "progress",
            "severity": Severity.GREEN.value,
            "stage": "progress",
            "subject": shipment.shipment_id,
            "evidence": {
                "scanned_at": _iso(shipment.last_scan_at),
                "status": str(shipment.last_status or ""),
            },
        },
        priority=Priority.LOW,
        message_class=MessageClass.TRANSACTIONAL,
        # Superseded by the next scan; a progress note a day old is noise.
        expires_at=now + min(policy.progress_min_interval, timedelta(hours=24)),
        source_event_id=shipment.source_event_id,
        source_event_time=shipment.source_event_time,
    )


def dispatch_variables(
    order: Order, episode: Episode, problem: Problem | None, policy: LogisticsPolicy
) -> dict[str, Any]:
    evidence = problem.evidence if problem else {}
    return {
        "order_id": order.order_id,
        **NO_ITEMS,
        "paid_at": _iso(order.paid_at),
        "dispatch_due": evidence.get("dispatch_due"),
        "dispatched_at": _iso(order.dispatched_at),
        "followup": episode.followups,
        "next_update_at": _iso(episode.next_update_at),
        "warehouse_asked": policy.promise_expedite,
    }


def dispatch_message(
    order: Order,
    episode: Episode,
    message: Message,
    now: datetime,
    policy: LogisticsPolicy,
    *,
    shipment: Shipment | None,
) -> SendNotification:
    """Dispatch is late (notice, update, follow-up), or it has finally left (closing)."""
    variables = dispatch_variables(order, episode, message.problem, policy)
    if message.stage is Stage.CLOSING:
        kind = NotificationKind.SHIPMENT_UPDATE
        template = "shipment_update.dispatched"
        variables |= {
            "after_delay": True,
            "carrier": shipment.carrier if shipment else None,
            "tracking_number": shipment.tracking_number if shipment else None,
            "expected_delivery": _still_ahead(
                expected_delivery(shipment) if shipment else None, now, policy.timezone
            ),
        }
        extra: dict[str, Any] = {
            "resolution": Resolution.DISPATCHED.value,
            "evidence": {
                "dispatched_at": _iso(order.dispatched_at),
                "paid_at": _iso(order.paid_at),
            },
        }
    else:
        assert message.problem is not None  # noqa: S101 - only closing messages lack one
        kind = NotificationKind.DISPATCH_DELAY
        template = "dispatch_delay"
        extra = {}
    return _episode_command(
        kind,
        template,
        subject=order.order_id,
        order_id=order.order_id,
        message=message,
        episode=episode,
        variables=variables,
        extra=extra,
        expires_at=now + policy.followup_every,
        source=(order.source_event_id, order.source_event_time),
    )


def _episode_command(
    kind: NotificationKind,
    template: str,
    *,
    subject: str,
    order_id: str,
    message: Message,
    episode: Episode,
    variables: dict[str, Any],
    extra: dict[str, Any],
    expires_at: datetime,
    source: tuple[str | None, datetime | None],
) -> SendNotification:
    """One step of an episode as a command; its key says which step, so it is sent once.
    A closing message is good news at normal priority; the others go by severity."""
    priority = (
        _PRIORITY.get(message.problem.severity, Priority.NORMAL)
        if message.stage is not Stage.CLOSING and message.problem is not None
        else Priority.NORMAL
    )
    return SendNotification(
        idempotency_key=f"{kind.value}:{subject}:{message.key_suffix(episode)}",
        kind=kind,
        template=template,
        order_id=order_id,
        variables=variables,
        meta=_meta(message, episode, subject, extra),
        priority=priority,
        message_class=MessageClass.TRANSACTIONAL,
        expires_at=expires_at,
        source_event_id=source[0],
        source_event_time=source[1],
    )


def ops_escalation(
    *,
    subject: str,
    order_id: str,
    shipment: Shipment | None,
    episode: Episode,
    problem: Problem,
    handover: bool,
    source_event_id: str | None,
    source_event_time: datetime | None,
) -> SendNotification:
    """For the shop's staff (the notifier sends it to the ops chat-bot channel): a red case,
    or follow-ups used up, so a person takes over."""
    reason = "handover" if handover else problem.rule.value
    return SendNotification(
        idempotency_key=f"ops_escalation:{subject}:{episode.number}:{reason}",
        kind=NotificationKind.OPS_ESCALATION,
        template="ops_escalation.logistics",
        order_id=order_id,
        variables={
            "order_id": order_id,
            "shipment_id": shipment.shipment_id if shipment else None,
            "carrier": shipment.carrier if shipment else None,
            "tracking_number": shipment.tracking_number if shipment else None,
            "rule": problem.rule.value,
            "severity": problem.severity.value,
            "since": problem.since.isoformat(),
            "opened_at": _iso(episode.opened_at),
            "followups": episode.followups,
            "handover": handover,
            "evidence": dict(problem.evidence),
        },
        meta={
            "rule": problem.rule.value,
            "severity": problem.severity.value,
            "stage": "handover" if handover else "escalation",
            "episode": episode.number,
            "subject": subject,
            "evidence": dict(problem.evidence),
        },
        priority=Priority.CRITICAL if problem.severity is Severity.RED else Priority.HIGH,
        message_class=MessageClass.TRANSACTIONAL,
        source_event_id=source_event_id,
        source_event_time=source_event_time,
    )


def with_items(command: SendNotification, items: tuple[str, int] | None) -> SendNotification:
    """Name what the customer bought, when known (domain-notes §4: the order, the item)."""
    if items is None or "item_title" not in command.variables:
        return command
    title, count = items
    variables = {**command.variables, "item_title": title, "item_count": count}
    return command.model_copy(update={"variables": variables})

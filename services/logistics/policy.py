"""Pure logistics decisions: what we know about a shipment or an order, which problems it has
now, and what to tell whom. No I/O; every function takes ``now``.

The same functions run for a Kafka batch and for a timer, so the outcome depends only on the
facts known and the time, never on the order in which events arrived (issue 4, "Correctness
under real conditions"): facts are merged commutatively (latest scan by scan time, first
delivery, distinct failed attempts), and problems are derived from the merged facts.
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from contracts.shop import TrackingStatus
from followup.values import value
from services.logistics.settings import (
    MAX_FOLLOWUP_INTERVAL,
    CarrierException,
    LogisticsPolicy,
    Severity,
)
from services.logistics.working_days import WorkingCalendar

Evidence = Mapping[str, Any]


class Rule(StrEnum):
    """Which detection rule fired; staff see it in the message's meta."""

    DISPATCH_LATE = "dispatch_late"
    STALLED = "stalled"
    LATE = "late"
    DELIVERY_FAILED = "delivery_failed"
    CUSTOMS_HOLD = "customs_hold"
    EXCEPTION = "exception"
    RETURNED_TO_SENDER = "returned_to_sender"
    LOST = "lost"

    @property
    def is_carrier_exception(self) -> bool:
        return self.value in _CARRIER_EXCEPTIONS


_CARRIER_EXCEPTIONS = frozenset(c.value for c in CarrierException)
_EXCEPTION_STATUSES = frozenset(TrackingStatus(c.value) for c in CarrierException)
# Among problems of one colour the most specific leads the message: what the carrier
# reported beats what we inferred (late, then stalled).
_RULE_ORDER = {
    Rule.LOST: 0,
    Rule.RETURNED_TO_SENDER: 1,
    Rule.DELIVERY_FAILED: 2,
    Rule.CUSTOMS_HOLD: 3,
    Rule.EXCEPTION: 4,
    Rule.DISPATCH_LATE: 5,
    Rule.LATE: 6,
    Rule.STALLED: 7,
}
# Two scans with the same time: the one later in a parcel's life wins, whichever came first.
_STATUS_ORDER = {status: n for n, status in enumerate(TrackingStatus)}


@value
class Problem:
    rule: Rule
    severity: Severity
    since: datetime
    """When the problem began (threshold crossed, exception scanned)."""
    evidence: Evidence


def ranked(problems: Sequence[Problem]) -> list[Problem]:
    """Most serious first; the first one leads the customer's message."""
    return sorted(problems, key=lambda p: (-p.severity.rank, _RULE_ORDER[p.rule]))


# --- facts ------------------------------------------------------------------------------------


@value
class Dispatch:
    shipment_id: str
    order_id: str
    carrier: str
    tracking_number: str
    dispatched_at: datetime
    estimated_delivery: str | None
    service_level: str | None
    destination_city: str | None
    event_id: str
    event_time: datetime


@value
class Scan:
    shipment_id: str
    order_id: str
    status: TrackingStatus
    scanned_at: datetime
    location: str | None
    description: str | None
    estimated_delivery: str | None
    event_id: str
    event_time: datetime


class ScanEffect(StrEnum):
    LATEST = "latest"
    """The newest scan so far: the parcel's current state."""
    OLDER = "older"
    """Older than one already known (arrived late): kept for its facts, not its status."""
    REPEATED = "repeated"
    """The same scan again (same time and status), e.g. republished under a new event id."""


@value
class Shipment:
    shipment_id: str
    order_id: str
    carrier: str | None = None
    tracking_number: str | None = None
    service_level: str | None = None
    destination_city: str | None = None
    dispatched_at: datetime | None = None
    promised_delivery: str | None = None
    revised_delivery: str | None = None
    revised_at: datetime | None = None
    last_scan_at: datetime | None = None
    last_status: TrackingStatus | None = None
    last_location: str | None = None
    failed_attempts: tuple[datetime, ...] = ()
    delivered_at: datetime | None = None
    returned_at: datetime | None = None
    pickup_notified: bool = False
    order_ended_at: datetime | None = None
    """The order was cancelled or closed: no notices about this parcel any more."""
    last_progress_at: datetime | None = None
    source_event_id: str | None = None
    source_event_time: datetime | None = None

    @property
    def anchor(self) -> datetime | None:
        """What "no scan for N hours" counts from: the last scan, or dispatch before any."""
        return self.last_scan_at or self.dispatched_at

    @property
    def started_at(self) -> datetime | None:
        return self.dispatched_at or self.last_scan_at


def apply_dispatch(shipment: Shipment, fact: Dispatch) -> Shipment:
    """A dispatch event fills in what the carrier and the shop promised; a scan may have come
    first, so scan-derived fields are kept."""
    return replace(
        shipment,
        order_id=fact.order_id,
        carrier=fact.carrier,
        tracking_number=fact.tracking_number,
        dispatched_at=min(fact.dispatched_at, shipment.dispatched_at or fact.dispatched_at),
        promised_delivery=fact.estimated_delivery or shipment.promised_delivery,
        service_level=fact.service_level or shipment.service_level,
        destination_city=fact.destination_city or shipment.destination_city,
        source_event_id=shipment.source_event_id or fact.event_id,
        source_event_time=shipment.source_event_time or fact.event_time,
    )


def apply_scans(shipment: Shipment, scans: Sequence[Scan]) -> tuple[Shipment, list[ScanEffect]]:
    """Merge carrier scans in any order: the latest (by scan time, then by a fixed status
    order) is the current state; failed attempts are counted once per scan time; the first
    delivery and the first return are kept; the latest revised estimate wins.

    One pass with plain locals and a single copy at the end: this runs for every scan at
    ten thousand scans a second.
    """
    failed = shipment.failed_attempts
    delivered, returned = shipment.delivered_at, shipment.returned_at
    revised, revised_at = shipment.revised_delivery, shipment.revised_at
    last_at, last_status = shipment.last_scan_at, shipment.last_status
    last_location = shipment.last_location
    event_id, event_time = shipment.source_event_id, shipment.source_event_time
    current = (last_at, _STATUS_ORDER[last_status]) if last_at and last_status else None
    effects: list[ScanEffect] = []
    for scan in scans:
        at, status = scan.scanned_at, scan.status
        if status is TrackingStatus.DELIVERY_FAILED and at not in failed:
            failed = tuple(sorted((*failed, at)))
        elif status is TrackingStatus.DELIVERED and (delivered is None or at < delivered):
            delivered = at
        elif status is TrackingStatus.RETURNED_TO_SENDER and (returned is None or at < returned):
            returned = at
        estimate = scan.estimated_delivery
        if estimate and (
            revised_at is None
            or at > revised_at
            or (at == revised_at and revised is not None and estimate > revised)
        ):
            revised, revised_at = estimate, at
        incoming = (at, _STATUS_ORDER[status])
        if current == incoming:
            effects.append(ScanEffect.REPEATED)
        elif current is not None and incoming < current:
            effects.append(ScanEffect.OLDER)
        else:
            current = incoming
            last_at, last_status, last_location = at, status, scan.location
            event_id, event_time = scan.event_id, scan.event_time
            effects.append(ScanEffect.LATEST)
    merged = Shipment(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        service_level=shipment.service_level,
        destination_city=shipment.destination_city,
        dispatched_at=shipment.dispatched_at,
        promised_delivery=shipment.promised_delivery,
        revised_delivery=revised,
        revised_at=revised_at,
        last_scan_at=last_at,
        last_status=last_status,
        last_location=last_location,
        failed_attempts=failed,
        delivered_at=delivered,
        returned_at=returned,
        pickup_notified=shipment.pickup_notified,
        order_ended_at=shipment.order_ended_at,
        last_progress_at=shipment.last_progress_at,
        source_event_id=event_id,
        source_event_time=event_time,
    )
    return merged, effects


@value
class Order:
    order_id: str
    shop_id: str | None = None
    customer_id: str | None = None
    item_title: str | None = None
    item_count: int | None = None
    paid_at: datetime | None = None
    ended_at: datetime | None = None
    """Cancelled, or closed by the platform: nothing will be dispatched."""
    ended_reason: str | None = None
    dispatched_at: datetime | None = None
    source_event_id: str | None = None
    source_event_time: datetime | None = None


# --- detection ----------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def delivery_deadline(estimate: str, timezone: str) -> datetime:
    """The end of a promised delivery: a time as given, a date at midnight after it."""
    if len(estimate) == 10:
        day = date.fromisoformat(estimate)
        end = datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(timezone))
    else:
        end = datetime.fromisoformat(estimate)
    # In UTC, like every time it is compared with (see ``_facts`` in service.py).
    return end.astimezone(UTC)


def expected_delivery(shipment: Shipment) -> str | None:
    """The carrier's latest estimate, else the shop's promise."""
    return shipment.revised_delivery or shipment.promised_delivery


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def is_aged_out(started_at: datetime | None, now: datetime, policy: LogisticsPolicy) -> bool:
    return started_at is not None and now - started_at > policy.ignore_older_than


@value
class Assessment:
    problems: list[Problem]
    """Every problem at ``now``, most serious first."""
    next_check: datetime | None
    """The next moment a new problem could begin if no event arrives: the timer's due time."""


_NOTHING_TO_WATCH = Assessment([], None)


def assess_shipment(shipment: Shipment, now: datetime, policy: LogisticsPolicy) -> Assessment:
    """The shipment's problems at ``now`` and when to look again, in one pass: this runs for
    every scan."""
    if (
        shipment.delivered_at is not None
        or shipment.order_ended_at is not None
        or is_aged_out(shipment.started_at, now, policy)
    ):
        return _NOTHING_TO_WATCH
    if shipment.returned_at is not None:
        # Once on its way back, later scans are the return journey: neither "moving again"
        # nor a stall to chase. A person decides about a new parcel or a refund.
        return Assessment(
            [_carrier_exception(shipment, CarrierException.RETURNED_TO_SENDER, policy)], None
        )
    problems: list[Problem] = []
    status = shipment.last_status
    failed = CarrierException.DELIVERY_FAILED
    if status in _EXCEPTION_STATUSES and status is not TrackingStatus.DELIVERY_FAILED:
        assert status is not None  # noqa: S101 - a member of the set
        problems.append(_carrier_exception(shipment, CarrierException(status.value), policy))
    if status is TrackingStatus.AVAILABLE_FOR_PICKUP:
        # Waiting at a pickup point is not a stall, and it has arrived, so it is not late.
        return Assessment(problems, None)
    if shipment.failed_attempts:
        # A failed attempt stays the problem until the parcel is delivered or left for
        # pickup: going out for another try is not yet "back on track".
        problems.append(_carrier_exception(shipment, failed, policy))
    upcoming: datetime | None = None
    anchor = shipment.anchor
    if anchor is not None:
        yellow, red = policy.stall_thresholds(shipment.carrier, shipment.service_level)
        stalled, stalled_red = anchor + yellow, anchor + red
        if now < stalled:
            upcoming = stalled
        else:
            problems.append(
                _stalled(
                    shipment,
                    anchor=anchor,
                    now=now,
                    due=stalled,
                    red_due=stalled_red,
                    policy=policy,
                )
            )
            upcoming = stalled_red if now < stalled_red else None
    late = late_due(shipment, policy)
    if late is not None:
        if now < late:
            upcoming = late if upcoming is None or late < upcoming else upcoming
        else:
            problems.append(_late(shipment, now, late, policy))
    return Assessment(ranked(problems) if len(problems) > 1 else problems, upcoming)


def shipment_problems(shipment: Shipment, now: datetime, policy: LogisticsPolicy) -> list[Problem]:
    return assess_shipment(shipment, now, policy).problems


def next_shipment_check(
    shipment: Shipment, now: datetime, policy: LogisticsPolicy
) -> datetime | None:
    return assess_shipment(shipment, now, policy).next_check


def _carrier_exception(
    shipment: Shipment, exception: CarrierException, policy: LogisticsPolicy
) -> Problem:
    severity = policy.exception_severity[exception]
    attempts = len(shipment.failed_attempts)
    if (
        exception is CarrierException.DELIVERY_FAILED
        and attempts >= policy.red_after_failed_attempts
    ):
        severity = Severity.RED
    since = {
        CarrierException.RETURNED_TO_SENDER: shipment.returned_at,
        CarrierException.DELIVERY_FAILED: max(shipment.failed_attempts, default=None),
    }.get(exception, shipment.last_scan_at)
    assert since is not None  # noqa: S101 - an exception is only known from a scan
    evidence: dict[str, Any] = {
        "status": exception.value,
        "scanned_at": since.isoformat(),
        "location": shipment.last_location,
    }
    if exception is CarrierException.DELIVERY_FAILED:
        evidence["failed_attempts"] = attempts
        evidence["red_after_failed_attempts"] = policy.red_after_failed_attempts
    return Problem(Rule(exception.value), severity, since, evidence)


def _stalled(
    shipment: Shipment,
    *,
    anchor: datetime,
    now: datetime,
    due: datetime,
    red_due: datetime,
    policy: LogisticsPolicy,
) -> Problem:
    severity = Severity.RED if now >= red_due else Severity.YELLOW
    evidence = {
        "last_scan_at": _iso(shipment.last_scan_at),
        "dispatched_at": _iso(shipment.dispatched_at),
        "counted_from": "last_scan" if shipment.last_scan_at else "dispatch",
        "hours_without_scan": _hours(now - anchor),
        "threshold_hours": _hours(due - anchor),
        "red_threshold_hours": _hours(red_due - anchor),
        "carrier": shipment.carrier,
        "service_level": shipment.service_level or policy.default_service_level.value,
    }
    return Problem(Rule.STALLED, severity, red_due if severity is Severity.RED else due, evidence)


def late_due(shipment: Shipment, policy: LogisticsPolicy) -> datetime | None:
    """When the shipment counts as late: the end of the expected delivery plus the grace."""
    estimate = expected_delivery(shipment)
    if estimate is None:
        return None
    return delivery_deadline(estimate, policy.timezone) + policy.late_grace


def _late(shipment: Shipment, now: datetime, due: datetime, policy: LogisticsPolicy) -> Problem:
    evidence = {
        "promised_delivery": shipment.promised_delivery,
        "revised_delivery": shipment.revised_delivery,
        "estimate_used": "revised" if shipment.revised_delivery else "promised",
        "grace_hours": _hours(policy.late_grace),
        "hours_late": _hours(now - (due - policy.late_grace)),
        "last_scan_at": _iso(shipment.last_scan_at),
    }
    return Problem(Rule.LATE, Severity.YELLOW, due, evidence)


@value
class DispatchDeadlines:
    due: datetime
    red: datetime
    promise: str
    """How the promise is counted, for the evidence ('2 working days (cn)', '48h')."""
    uncovered_years: tuple[int, ...] = ()


def dispatch_deadlines(
    paid_at: datetime, timezone: str, policy: LogisticsPolicy, calendar: WorkingCalendar
) -> DispatchDeadlines:
    dispatch = policy.dispatch
    red_clock = dispatch.red_clock_time
    if dispatch.within is not None and red_clock is not None:
        return DispatchDeadlines(
            paid_at + dispatch.within, paid_at + red_clock, f"{_hours(dispatch.within):g}h"
        )
    due = calendar.add_working_days(paid_at, dispatch.working_days, timezone)
    red = calendar.add_working_days(paid_at, dispatch.red_after_working_days, timezone)
    return DispatchDeadlines(
        due.at,
        red.at,
        f"{dispatch.working_days} working days ({calendar.kind})",
        tuple(sorted(set(due.uncovered_years) | set(red.uncovered_years))),
    )


def dispatch_problems(
    order: Order, deadlines: DispatchDeadlines | None, now: datetime, policy: LogisticsPolicy
) -> list[Problem]:
    if (
        deadlines is None
        or order.paid_at is None
        or order.dispatched_at is not None
        or order.ended_at is not None
        or is_aged_out(order.paid_at, now, policy)
        or now < deadlines.due
    ):
        return []
    severity = Severity.RED if now >= deadlines.red else Severity.YELLOW
    evidence: dict[str, Any] = {
        "paid_at": order.paid_at.isoformat(),
        "dispatch_due": deadlines.due.isoformat(),
        "red_at": deadlines.red.isoformat(),
        "promise": deadlines.promise,
        "hours_overdue": _hours(now - deadlines.due),
    }
    if deadlines.uncovered_years:
        evidence["calendar_note"] = (
            "no holiday data for "
            + ", ".join(str(y) for y in deadlines.uncovered_years)
            + ": counted Monday to Friday"
        )
    return [
        Problem(
            Rule.DISPATCH_LATE,
            severity,
            deadlines.red if severity is Severity.RED else deadlines.due,
            evidence,
        )
    ]


def next_dispatch_check(
    order: Order, deadlines: DispatchDeadlines | None, now: datetime, policy: LogisticsPolicy
) -> datetime | None:
    if (
        deadlines is None
        or order.paid_at is None
        or order.dispatched_at is not None
        or order.ended_at is not None
        or is_aged_out(order.paid_at, now, policy)
    ):
        return None
    future = [c for c in (deadlines.due, deadlines.red) if c > now]
    return min(future) if future else None


# --- episodes -------------------------------------------------------------------------------


class Stage(StrEnum):
    NOTICE = "notice"
    """The first message of an episode."""
    UPDATE = "update"
    """News within an open episode: a new carrier exception, or it turned red."""
    FOLLOWUP = "followup"
    """The promised regular update while nothing is resolved."""
    CLOSING = "closing"
    """Resolved: back on track, delivered, dispatched, ready for pickup."""
    CLOSED_SILENTLY = "closed_silently"
    """Resolved in a way that needs no message (the order was cancelled)."""
    HANDOVER = "handover"
    """Follow-ups used up: a person takes over."""


class Resolution(StrEnum):
    BACK_ON_TRACK = "back_on_track"
    DELIVERED = "delivered"
    PICKUP = "pickup"
    DISPATCHED = "dispatched"
    SILENT = "silent"
    """The order was cancelled, or the case is too old to talk about: nothing to tell."""


@value
class Episode:
    """One continuous stretch during which a shipment (or an unshipped order) has problems."""

    number: int = 0
    is_open: bool = False
    opened_at: datetime | None = None
    told: frozenset[Rule] = frozenset()
    """Rules the customer has heard about in this episode."""
    severity: Severity = Severity.GREEN
    """The worst colour the customer has heard about in this episode."""
    escalated: frozenset[Rule] = frozenset()
    followups: int = 0
    last_notice_at: datetime | None = None
    next_update_at: datetime | None = None
    handed_over: bool = False


@value
class Message:
    stage: Stage
    problem: Problem | None
    """What leads the message (None when closing)."""
    problems: tuple[Problem, ...] = ()
    resolution: Resolution | None = None

    def key_suffix(self, episode: Episode) -> str:
        """Unique within the subject: the idempotency key of this message."""
        if self.stage is Stage.FOLLOWUP:
            return f"{episode.number}:followup:{episode.followups}"
        if self.stage is Stage.UPDATE and self.problem is not None:
            return f"{episode.number}:update:{self.problem.rule}:{self.problem.severity}"
        return f"{episode.number}:{self.stage}"


@value
class Step:
    episode: Episode
    message: Message | None = None
    escalations: tuple[Problem, ...] = ()
    """Red problems to hand to operations now (once per episode and rule)."""
    wake_at: datetime | None = None
    """When this episode needs looking at again (follow-up due, held-back news)."""
    events: tuple[str, ...] = ()
    """What happened to the episode, for metrics: opened, closed, handed_over."""


def reconcile(
    episode: Episode,
    problems: Sequence[Problem],
    resolution: Resolution,
    now: datetime,
    policy: LogisticsPolicy,
) -> Step:
    """Given the problems at ``now``, what to say and how the episode continues.

    One notice per episode, news at once, a follow-up at least every ``followup_every`` and
    never closer than ``min_gap`` (red news and the closing message excepted), a closing
    message when nothing is wrong any more.
    """
    if not problems:
        return _close(episode, resolution, now) if episode.is_open else Step(episode)
    if not episode.is_open:
        return _escalate(_open(episode, problems, now, policy), problems)
    if episode.handed_over:
        return _escalate(Step(episode), problems)
    return _escalate(_continue(episode, problems, now, policy), problems)


def promised_update(now: datetime, after: timedelta, policy: LogisticsPolicy) -> datetime:
    """When we promise the next update: ``after`` from now, but in the shop's daytime.

    A promise of "an update by 02:40" helps nobody: a time at night moves to the next
    morning when that still keeps the 24-hour promise, else to the evening before.
    """
    due = now + after
    zone = ZoneInfo(policy.timezone)
    local = due.astimezone(zone)
    start, end = policy.updates_from, policy.updates_until
    if start <= local.time() < end:
        return due
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    morning = datetime.combine(day, start, zone)
    if morning - now <= MAX_FOLLOWUP_INTERVAL:
        return morning
    evening = datetime.combine(day - timedelta(days=1), end, zone)
    return evening if evening > now + policy.min_gap else due


def _worst(problems: Sequence[Problem], floor: Severity = Severity.GREEN) -> Severity:
    return max((floor, *(p.severity for p in problems)), key=lambda s: s.rank)


def _close(episode: Episode, resolution: Resolution, now: datetime) -> Step:
    closed = replace(episode, is_open=False, next_update_at=None)
    if resolution is Resolution.SILENT:
        message = Message(Stage.CLOSED_SILENTLY, None, resolution=resolution)
        return Step(closed, message, events=("closed",))
    message = Message(Stage.CLOSING, None, resolution=resolution)
    return Step(replace(closed, last_notice_at=now), message, events=("closed",))


def _open(
    episode: Episode, problems: Sequence[Problem], now: datetime, policy: LogisticsPolicy
) -> Step:
    opened = Episode(
        number=episode.number + 1,
        is_open=True,
        opened_at=now,
        told=frozenset(p.rule for p in problems),
        severity=_worst(problems),
        last_notice_at=now,
        next_update_at=promised_update(now, policy.first_followup_after, policy),
    )
    message = Message(Stage.NOTICE, problems[0], tuple(problems))
    return Step(opened, message, wake_at=opened.next_update_at, events=("opened",))


def _continue(
    episode: Episode, problems: Sequence[Problem], now: datetime, policy: LogisticsPolicy
) -> Step:
    worst = _worst(problems)
    told = replace(
        episode,
        told=episode.told | {p.rule for p in problems},
        severity=_worst(problems, episode.severity),
        last_notice_at=now,
    )
    news = [p for p in problems if p.rule not in episode.told and p.rule.is_carrier_exception]
    turned_red = worst is Severity.RED and episode.severity is not Severity.RED
    if news or turned_red:
        held_until = (episode.last_notice_at or now) + policy.min_gap
        if not turned_red and now < held_until:
            return Step(episode, wake_at=held_until)
        lead = problems[0] if turned_red else ranked(news)[0]
        updated = replace(
            told, next_update_at=promised_update(now, policy.first_followup_after, policy)
        )
        message = Message(Stage.UPDATE, lead, tuple(problems))
        return Step(updated, message, wake_at=updated.next_update_at)
    due = episode.next_update_at or now
    if now < due:
        return Step(episode, wake_at=due)
    if episode.followups >= policy.max_followups:
        handed = replace(episode, handed_over=True, next_update_at=None)
        return Step(
            handed, Message(Stage.HANDOVER, problems[0], tuple(problems)), events=("handed_over",)
        )
    followed = replace(
        told,
        followups=episode.followups + 1,
        next_update_at=promised_update(now, policy.followup_every, policy),
    )
    message = Message(Stage.FOLLOWUP, problems[0], tuple(problems))
    return Step(followed, message, wake_at=followed.next_update_at)


def _escalate(step: Step, problems: Sequence[Problem]) -> Step:
    """Red problems go to a person once per episode and rule."""
    red = tuple(
        p for p in problems if p.severity is Severity.RED and p.rule not in step.episode.escalated
    )
    if not red:
        return step
    return replace(
        step,
        episode=replace(step.episode, escalated=step.episode.escalated | {p.rule for p in red}),
        escalations=red,
    )


def shipment_resolution(shipment: Shipment, now: datetime, policy: LogisticsPolicy) -> Resolution:
    if shipment.order_ended_at is not None or is_aged_out(shipment.started_at, now, policy):
        return Resolution.SILENT
    if shipment.delivered_at is not None:
        return Resolution.DELIVERED
    if shipment.last_status is TrackingStatus.AVAILABLE_FOR_PICKUP:
        return Resolution.PICKUP
    return Resolution.BACK_ON_TRACK


def dispatch_resolution(order: Order) -> Resolution:
    return Resolution.DISPATCHED if order.dispatched_at is not None else Resolution.SILENT


def wants_pickup_notice(shipment: Shipment) -> bool:
    """Ready at a pickup point: a helpful notice once per shipment (not an apology)."""
    return (
        shipment.last_status is TrackingStatus.AVAILABLE_FOR_PICKUP
        and shipment.delivered_at is None
        and not shipment.pickup_notified
        and shipment.order_ended_at is None
    )


_PROGRESS_STATUSES = (TrackingStatus.IN_TRANSIT, TrackingStatus.OUT_FOR_DELIVERY)


def wants_progress_update(
    shipment: Shipment, episode: Episode, now: datetime, policy: LogisticsPolicy
) -> bool:
    """Optional on-time progress ("your parcel is in <city>"): off by default, never while a
    problem is open, and not more often than ``progress_min_interval``."""
    return (
        policy.progress_updates
        and not episode.is_open
        and shipment.last_status in _PROGRESS_STATUSES
        and bool(shipment.last_location)
        and not is_aged_out(shipment.started_at, now, policy)
        and (
            shipment.last_progress_at is None
            or now - shipment.last_progress_at >= policy.progress_min_interval
        )
    )

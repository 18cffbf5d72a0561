"""Pure reminder decisions: given the order, the customer and the time, what should happen.

No I/O. Every function takes ``now`` (or the event's time) explicitly.
"""

import hashlib
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from followup.values import value
from services.reminder.settings import (
    Experiment,
    QuietHours,
    ReminderPolicy,
    ReminderTier,
    Segment,
    Segmentation,
)

HOLDOUT = "holdout"
NO_EXPERIMENT = "none"


class OrderStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    CANCELLED = "cancelled"
    CLOSED = "closed"


# --- segments -------------------------------------------------------------------------------


@value
class CustomerFigures:
    """What is known of a customer's past purchases (before the order at hand)."""

    paid_orders: int = 0
    total_spent: Decimal = Decimal(0)
    last_paid_at: datetime | None = None
    member: bool = False


def known_figures(own: CustomerFigures, hints: CustomerFigures) -> CustomerFigures:
    """The service's own figures, completed by the platform's hints.

    The hints describe everything the platform saw before this order; the service only sees
    payments since it was deployed. Each figure is the larger of the two, which is the hints
    when the service has no history and its own figures when the platform sends none.
    """
    last = [t for t in (own.last_paid_at, hints.last_paid_at) if t is not None]
    return CustomerFigures(
        paid_orders=max(own.paid_orders, hints.paid_orders),
        total_spent=max(own.total_spent, hints.total_spent),
        last_paid_at=max(last) if last else None,
        member=hints.member or own.member,
    )


def rfm_score(figures: CustomerFigures, at: datetime, rules: Segmentation) -> int:
    """Recency, frequency and monetary value, each scored 1..5, summed (3..15)."""
    recency = 1
    if figures.last_paid_at is not None:
        days = (at - figures.last_paid_at).total_seconds() / 86400
        recency = 5 - sum(1 for limit in rules.recency_days if days > limit)
    frequency = 1 + sum(1 for limit in rules.frequency_orders if figures.paid_orders >= limit)
    monetary = 1 + sum(1 for limit in rules.monetary_spent if figures.total_spent >= limit)
    return recency + frequency + monetary


def segment_of(figures: CustomerFigures, at: datetime, rules: Segmentation) -> Segment:
    """New before everything (a first order gets the first-order offer even from a member),
    then dormant (a wake-up tone beats perks the customer has not used for months), then VIP,
    member and returning."""
    if figures.paid_orders == 0:
        return Segment.NEW
    if figures.last_paid_at is not None and at - figures.last_paid_at > rules.dormant_after:
        return Segment.DORMANT
    if rfm_score(figures, at, rules) >= rules.vip_min_score:
        return Segment.VIP
    if figures.member:
        return Segment.MEMBER
    return Segment.RETURNING


# --- experiments ----------------------------------------------------------------------------


def _unit_interval(*parts: str) -> float:
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(customer_id: str, experiment: Experiment) -> str:
    """Deterministic by customer id: a customer stays in one group across all their orders
    and replicas, and the holdout share gets no reminders at all."""
    if not experiment.enabled:
        return NO_EXPERIMENT
    if _unit_interval(experiment.name, "holdout", customer_id) < experiment.holdout:
        return HOLDOUT
    if not experiment.variants:
        return NO_EXPERIMENT
    point = _unit_interval(experiment.name, "variant", customer_id) * sum(
        v.weight for v in experiment.variants
    )
    for variant in experiment.variants:
        point -= variant.weight
        if point < 0:
            return variant.name
    return experiment.variants[-1].name


def tiers_for(segment: Segment, variant: str, policy: ReminderPolicy) -> list[ReminderTier]:
    """A variant's tiers win (that is what is being tested), then the segment's, then the
    default tiers."""
    for candidate in policy.experiment.variants:
        if candidate.name == variant and candidate.tiers is not None:
            return candidate.tiers
    segment_policy = policy.segments.get(segment)
    if segment_policy is not None and segment_policy.tiers is not None:
        return segment_policy.tiers
    return policy.tiers


# --- quiet hours ----------------------------------------------------------------------------


def quiet_until(moment: datetime, timezone: str, quiet: QuietHours) -> datetime | None:
    """The end of the quiet window ``moment`` falls in (customer's local time), or None."""
    if not quiet.enabled or quiet.start == quiet.end:
        return None
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    clock = local.time()
    day = local.date()
    if quiet.start < quiet.end:  # e.g. 01:00-06:00, within one day
        inside = quiet.start <= clock < quiet.end
        end_day = day
    else:  # e.g. 22:00-08:00, across midnight
        inside = clock >= quiet.start or clock < quiet.end
        end_day = day + timedelta(days=1) if clock >= quiet.start else day
    if not inside:
        return None
    return _local(end_day, quiet.end, zone)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


# --- planning at order.created --------------------------------------------------------------


@value
class TierDue:
    tier: int
    due_at: datetime
    last: bool = False
    deferred_from: datetime | None = None
    """Set when quiet hours moved the tier."""


@value
class TierSkipped:
    tier: int
    due_at: datetime
    reason: str


def plan_tiers(
    ordered_at: datetime,
    pay_deadline: datetime,
    tiers: Sequence[ReminderTier],
    policy: ReminderPolicy,
    *,
    timezone: str,
    now: datetime,
) -> list[TierDue | TierSkipped]:
    """Due time of every tier, counted from the order event's time (not from consumption).

    A tier at or after the deadline would remind about an order that is already closed; a
    tier overdue by more than the grace (late or replayed event) would arrive in a burst with
    the next one; a tier in the customer's quiet hours waits for the morning unless that is
    too close to the deadline; a tier pushed onto or past the next one is superseded by it
    (the later tier's message says more). All skips carry a reason.
    """
    planned: list[TierDue | TierSkipped] = []
    for number, tier in enumerate(tiers, start=1):
        if tier.before_deadline is not None:
            due = pay_deadline - tier.before_deadline
        else:
            due = ordered_at + (tier.after_created or timedelta(0))
        if due >= pay_deadline:
            planned.append(TierSkipped(number, due, "after_deadline"))
        elif now - due > policy.late_grace:
            planned.append(TierSkipped(number, due, "overdue_on_arrival"))
        else:
            planned.append(
                _outside_quiet_hours(TierDue(number, due), pay_deadline, policy, timezone)
            )
    return _without_superseded(planned)


def _outside_quiet_hours(
    step: TierDue, pay_deadline: datetime, policy: ReminderPolicy, timezone: str
) -> TierDue | TierSkipped:
    morning = quiet_until(step.due_at, timezone, policy.quiet_hours)
    if morning is None:
        return step
    if morning <= pay_deadline - policy.quiet_hours.margin:
        return TierDue(step.tier, morning, step.last, deferred_from=step.due_at)
    return TierSkipped(step.tier, step.due_at, "quiet_hours_until_deadline")


def _without_superseded(planned: list[TierDue | TierSkipped]) -> list[TierDue | TierSkipped]:
    """Keep the due tiers strictly in order. A tier that quiet hours pushed onto or past the
    next one gives way to it; a tier that falls before the one kept before it (a short
    deadline) is dropped. The last tier kept says when the order closes."""
    result: list[TierDue | TierSkipped] = []
    kept: tuple[int, TierDue] | None = None
    for step in planned:
        if not isinstance(step, TierDue):
            result.append(step)
            continue
        if kept is not None and step.due_at <= kept[1].due_at:
            index, previous = kept
            if previous.deferred_from is None:
                result.append(TierSkipped(step.tier, step.due_at, f"before_tier_{previous.tier}"))
                continue
            result[index] = TierSkipped(
                previous.tier, previous.due_at, f"superseded_by_tier_{step.tier}"
            )
        kept = (len(result), step)
        result.append(step)
    if kept is not None:
        index, final = kept
        result[index] = TierDue(final.tier, final.due_at, True, final.deferred_from)
    return result


# --- firing ---------------------------------------------------------------------------------


@value
class Send:
    pass


@value
class Defer:
    until: datetime
    reason: str


@value
class Skip:
    reason: str


@value
class AlreadyReminded:
    """The order was in a message that went out after this tier fell due: merged into it."""


FireDecision = Send | Defer | Skip | AlreadyReminded


@value
class DueReminder:
    status: OrderStatus
    pay_deadline: datetime
    timezone: str
    customer_reminded_at: datetime | None
    """When this customer last got any reminder (any order)."""
    order_reminded_at: datetime | None
    """When this order last appeared in a reminder."""
    due_at: datetime
    """When the tier fell due (after any deferral)."""


def reminder_blocker(status: OrderStatus, pay_deadline: datetime, now: datetime) -> str | None:
    """Why a due reminder must not go out at all, or None when it may."""
    if status is not OrderStatus.UNPAID:
        return f"order_{status.value}"
    if now >= pay_deadline:
        return "deadline_passed"
    return None


def decide_due_reminder(due: DueReminder, policy: ReminderPolicy, now: datetime) -> FireDecision:
    """What to do with a tier whose timer fired: send, wait, merge or skip (with a reason).

    Checked again at firing because time moved on since planning: the timer may fire late
    into the night, and other orders of the customer may have been reminded meanwhile.
    """
    blocker = reminder_blocker(due.status, due.pay_deadline, now)
    if blocker is not None:
        return Skip(blocker)
    latest = due.pay_deadline - policy.quiet_hours.margin
    morning = quiet_until(now, due.timezone, policy.quiet_hours)
    if morning is not None:
        return (
            Defer(morning, "quiet_hours")
            if morning <= latest
            else Skip("quiet_hours_until_deadline")
        )
    last = due.customer_reminded_at
    if last is None or now - last >= policy.min_gap:
        return Send()
    # Listed in a message since this tier fell due (together with another order's tier, or
    # fired a moment later by another replica): that message did this tier's job.
    if due.order_reminded_at is not None and due.order_reminded_at >= due.due_at:
        return AlreadyReminded()
    after_gap = last + policy.min_gap
    return (
        Defer(after_gap, "customer_gap")
        if after_gap <= latest
        else Skip("customer_gap_until_deadline")
    )


def template_name(
    tier: ReminderTier, segment: str, number: int, *, last: bool, several: bool
) -> str:
    """``unpaid_reminder.<segment>.<n|last>``; the notifier falls back on the dotted parts.
    A message listing several orders has its own wording."""
    if several:
        return "unpaid_reminder.several"
    if tier.template is not None:
        return tier.template
    return f"unpaid_reminder.{segment}.{'last' if last else number}"


def points_for(amount: Decimal, per_unit: Decimal) -> int:
    return int(amount * per_unit)


# --- confirmation ---------------------------------------------------------------------------


def add_working_days(start: datetime, days: int, timezone: str) -> date:
    """The day ``days`` working days (Monday to Friday, customer's calendar) after ``start``."""
    day = start.astimezone(ZoneInfo(timezone)).date()
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            remaining -= 1
    return day


def dispatch_window(
    paid_at: datetime, min_days: int, max_days: int, timezone: str
) -> tuple[date, date]:
    return (
        add_working_days(paid_at, min_days, timezone),
        add_working_days(paid_at, max_days, timezone),
    )

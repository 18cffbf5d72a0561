"""Pure reminder decisions: given the order and the time, what should happen. No I/O."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.reminder.settings import ReminderPolicy


class OrderStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    CANCELLED = "cancelled"
    CLOSED = "closed"


@dataclass(frozen=True)
class TierDue:
    tier: int
    due_at: datetime


@dataclass(frozen=True)
class TierSkipped:
    tier: int
    due_at: datetime
    reason: str


def plan_tiers(
    ordered_at: datetime, pay_deadline: datetime, policy: ReminderPolicy, now: datetime
) -> list[TierDue | TierSkipped]:
    """Due time of every tier, counted from the order event's time (not from consumption).

    A tier at or after the deadline would remind about an order that is already closed; a
    tier overdue by more than the grace (late or replayed event) would arrive in a burst with
    the next one. Both are skipped with a reason.
    """
    plan: list[TierDue | TierSkipped] = []
    for number, tier in enumerate(policy.tiers, start=1):
        if tier.before_deadline is not None:
            due = pay_deadline - tier.before_deadline
        else:
            due = ordered_at + (tier.after_created or timedelta(0))
        if due >= pay_deadline:
            plan.append(TierSkipped(number, due, "after_deadline"))
        elif now - due > policy.late_grace:
            plan.append(TierSkipped(number, due, "overdue_on_arrival"))
        else:
            plan.append(TierDue(number, due))
    return plan


def reminder_blocker(status: OrderStatus, pay_deadline: datetime, now: datetime) -> str | None:
    """Why a due reminder must not go out now, or None when it should."""
    if status is not OrderStatus.UNPAID:
        return f"order_{status.value}"
    if now >= pay_deadline:
        return "deadline_passed"
    return None

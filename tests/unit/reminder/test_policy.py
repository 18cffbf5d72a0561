from datetime import UTC, datetime, timedelta

from services.reminder.policy import OrderStatus, TierDue, TierSkipped, plan_tiers, reminder_blocker
from services.reminder.settings import ReminderPolicy, ReminderTier

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DEFAULT = ReminderPolicy()


def test_default_tiers_count_from_the_event_time_and_back_from_the_deadline() -> None:
    plan = plan_tiers(T0, T0 + timedelta(hours=24), DEFAULT, now=T0 + timedelta(minutes=2))
    assert plan == [
        TierDue(1, T0 + timedelta(minutes=15)),
        TierDue(2, T0 + timedelta(hours=3)),
        TierDue(3, T0 + timedelta(hours=22)),
    ]


def test_a_tier_at_or_after_the_deadline_is_dropped() -> None:
    plan = plan_tiers(T0, T0 + timedelta(hours=2), DEFAULT, now=T0)
    assert plan == [
        TierDue(1, T0 + timedelta(minutes=15)),
        TierSkipped(2, T0 + timedelta(hours=3), "after_deadline"),
        TierDue(3, T0),  # two hours before a two-hour deadline: due at once
    ]


def test_a_late_event_skips_tiers_overdue_by_more_than_the_grace() -> None:
    late = T0 + timedelta(hours=3, minutes=5)
    plan = plan_tiers(T0, T0 + timedelta(hours=24), DEFAULT, now=late)
    assert plan == [
        TierSkipped(1, T0 + timedelta(minutes=15), "overdue_on_arrival"),
        TierDue(2, T0 + timedelta(hours=3)),  # 5 minutes late: within the 10-minute grace
        TierDue(3, T0 + timedelta(hours=22)),
    ]


def test_tiers_are_configurable() -> None:
    policy = ReminderPolicy(
        tiers=[ReminderTier(after_created=timedelta(seconds=20))], late_grace=timedelta(0)
    )
    assert plan_tiers(T0, T0 + timedelta(minutes=1), policy, now=T0) == [
        TierDue(1, T0 + timedelta(seconds=20))
    ]


def test_only_unpaid_orders_before_their_deadline_are_reminded() -> None:
    deadline = T0 + timedelta(hours=1)
    assert reminder_blocker(OrderStatus.UNPAID, deadline, T0) is None
    assert reminder_blocker(OrderStatus.PAID, deadline, T0) == "order_paid"
    assert reminder_blocker(OrderStatus.CANCELLED, deadline, T0) == "order_cancelled"
    assert reminder_blocker(OrderStatus.CLOSED, deadline, T0) == "order_closed"
    assert reminder_blocker(OrderStatus.UNPAID, deadline, deadline) == "deadline_passed"

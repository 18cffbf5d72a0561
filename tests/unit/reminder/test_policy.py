from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from followup.settings import ConfigError, load_policy
from services.reminder.policy import (
    HOLDOUT,
    NO_EXPERIMENT,
    AlreadyReminded,
    CustomerFigures,
    Defer,
    DueReminder,
    OrderStatus,
    Send,
    Skip,
    TierDue,
    TierSkipped,
    add_working_days,
    assign_variant,
    decide_due_reminder,
    dispatch_window,
    known_figures,
    plan_tiers,
    points_for,
    quiet_until,
    reminder_blocker,
    rfm_score,
    segment_of,
    template_name,
    tiers_for,
)
from services.reminder.settings import (
    Experiment,
    QuietHours,
    ReminderPolicy,
    ReminderTier,
    Segment,
    Segmentation,
    SegmentPolicy,
    Variant,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
DEFAULT = ReminderPolicy()
NO_QUIET = ReminderPolicy(quiet_hours=QuietHours(enabled=False))
RULES = Segmentation()


def plan(
    ordered_at: datetime,
    deadline: datetime,
    policy: ReminderPolicy = DEFAULT,
    *,
    now: datetime | None = None,
    timezone: str = "Asia/Shanghai",
) -> list[TierDue | TierSkipped]:
    return plan_tiers(
        ordered_at, deadline, policy.tiers, policy, timezone=timezone, now=now or ordered_at
    )


# --- tiers ------------------------------------------------------------------------------------


def test_default_tiers_count_from_the_event_time_and_back_from_the_deadline() -> None:
    assert plan(T0, T0 + timedelta(hours=10), now=T0 + timedelta(minutes=2)) == [
        TierDue(1, T0 + timedelta(minutes=15)),
        TierDue(2, T0 + timedelta(hours=3)),
        TierDue(3, T0 + timedelta(hours=8), last=True),
    ]


def test_a_tier_at_or_after_the_deadline_or_before_an_earlier_tier_is_dropped() -> None:
    # Without tier 3, the last tier kept is the one that says when the order closes.
    assert plan(T0, T0 + timedelta(hours=4)) == [
        TierDue(1, T0 + timedelta(minutes=15)),
        TierDue(2, T0 + timedelta(hours=3), last=True),
        TierSkipped(3, T0 + timedelta(hours=2), "before_tier_2"),
    ]
    assert plan(T0, T0 + timedelta(hours=2)) == [
        TierDue(1, T0 + timedelta(minutes=15), last=True),
        TierSkipped(2, T0 + timedelta(hours=3), "after_deadline"),
        TierSkipped(3, T0, "before_tier_1"),
    ]


def test_a_late_event_skips_tiers_overdue_by_more_than_the_grace() -> None:
    late = T0 + timedelta(hours=3, minutes=5)
    assert plan(T0, T0 + timedelta(hours=10), now=late) == [
        TierSkipped(1, T0 + timedelta(minutes=15), "overdue_on_arrival"),
        TierDue(2, T0 + timedelta(hours=3)),  # 5 minutes late: within the 10-minute grace
        TierDue(3, T0 + timedelta(hours=8), last=True),
    ]


def test_tiers_are_configurable() -> None:
    policy = ReminderPolicy(
        tiers=[ReminderTier(after_created=timedelta(seconds=20))], late_grace=timedelta(0)
    )
    assert plan(T0, T0 + timedelta(minutes=1), policy) == [
        TierDue(1, T0 + timedelta(seconds=20), last=True)
    ]


def test_a_tier_in_the_night_moves_to_the_morning() -> None:
    evening = datetime(2026, 11, 22, 21, 0, tzinfo=SHANGHAI)
    steps = plan(evening, evening + timedelta(hours=24))
    morning = datetime(2026, 11, 23, 8, 0, tzinfo=SHANGHAI)
    assert steps[0] == TierDue(1, evening + timedelta(minutes=15))
    # 00:00 is quiet: moved to 08:00, recorded with where it came from.
    assert steps[1] == TierDue(2, morning, deferred_from=evening + timedelta(hours=3))
    assert steps[2] == TierDue(3, evening + timedelta(hours=22), last=True)


def test_a_night_tier_whose_morning_is_too_close_to_the_deadline_is_skipped() -> None:
    evening = datetime(2026, 11, 22, 21, 0, tzinfo=SHANGHAI)
    deadline = datetime(2026, 11, 23, 8, 20, tzinfo=SHANGHAI)  # 08:00 + 30 min margin > 08:20
    steps = plan(evening, deadline)
    assert steps[1] == TierSkipped(2, evening + timedelta(hours=3), "quiet_hours_until_deadline")
    assert steps[2] == TierSkipped(3, deadline - timedelta(hours=2), "quiet_hours_until_deadline")


def test_quiet_hours_use_the_customers_timezone() -> None:
    # 10:00 in Shanghai is 02:00 in London: quiet there.
    london_morning = datetime(2026, 11, 22, 8, 0, tzinfo=ZoneInfo("Europe/London"))
    steps = plan(T0, T0 + timedelta(hours=24), timezone="Europe/London")
    # Tiers 1 (02:15) and 2 (05:00) both move to 08:00 London time; tier 2 says more.
    assert steps[:2] == [
        TierSkipped(1, london_morning, "superseded_by_tier_2"),
        TierDue(2, london_morning, last=True, deferred_from=T0 + timedelta(hours=3)),
    ]


def test_a_tier_pushed_onto_the_next_one_is_superseded_by_it() -> None:
    policy = ReminderPolicy(
        tiers=[
            ReminderTier(after_created=timedelta(hours=2)),  # 23:00 -> 08:00
            ReminderTier(after_created=timedelta(hours=4)),  # 01:00 -> 08:00
            ReminderTier(before_deadline=timedelta(hours=2)),
        ]
    )
    evening = datetime(2026, 11, 22, 21, 0, tzinfo=SHANGHAI)
    steps = plan(evening, evening + timedelta(hours=24), policy)
    morning = datetime(2026, 11, 23, 8, 0, tzinfo=SHANGHAI)
    assert steps[0] == TierSkipped(1, morning, "superseded_by_tier_2")
    assert steps[1] == TierDue(2, morning, deferred_from=evening + timedelta(hours=4))


def test_quiet_window_boundaries() -> None:
    quiet = QuietHours()
    night = datetime(2026, 11, 22, 22, 0, tzinfo=SHANGHAI)
    assert quiet_until(night, "Asia/Shanghai", quiet) == datetime(
        2026, 11, 23, 8, 0, tzinfo=SHANGHAI
    )
    early = datetime(2026, 11, 23, 7, 59, tzinfo=SHANGHAI)
    assert quiet_until(early, "Asia/Shanghai", quiet) == datetime(
        2026, 11, 23, 8, 0, tzinfo=SHANGHAI
    )
    assert (
        quiet_until(datetime(2026, 11, 23, 8, 0, tzinfo=SHANGHAI), "Asia/Shanghai", quiet) is None
    )
    assert (
        quiet_until(datetime(2026, 11, 22, 21, 59, tzinfo=SHANGHAI), "Asia/Shanghai", quiet) is None
    )
    same_day = QuietHours(start=time(1, 0), end=time(6, 0))
    assert quiet_until(
        datetime(2026, 11, 23, 3, 0, tzinfo=SHANGHAI), "Asia/Shanghai", same_day
    ) == (datetime(2026, 11, 23, 6, 0, tzinfo=SHANGHAI))
    assert (
        quiet_until(datetime(2026, 11, 23, 7, 0, tzinfo=SHANGHAI), "Asia/Shanghai", same_day)
        is None
    )
    assert quiet_until(night, "Asia/Shanghai", QuietHours(enabled=False)) is None


# --- segments ---------------------------------------------------------------------------------


def test_own_figures_are_completed_by_the_platforms_hints() -> None:
    own = CustomerFigures(1, Decimal("599"), T0 - timedelta(days=3))
    hints = CustomerFigures(12, Decimal("4860"), T0 - timedelta(days=10), member=True)
    assert known_figures(own, hints) == CustomerFigures(
        12, Decimal("4860"), T0 - timedelta(days=3), member=True
    )
    assert known_figures(CustomerFigures(), hints) == hints
    assert known_figures(own, CustomerFigures()) == own


def test_rfm_score_scores_each_dimension_from_one_to_five() -> None:
    assert rfm_score(CustomerFigures(), T0, RULES) == 3
    best = CustomerFigures(10, Decimal(5000), T0 - timedelta(days=1))
    assert rfm_score(best, T0, RULES) == 15
    middling = CustomerFigures(2, Decimal(500), T0 - timedelta(days=100))
    assert rfm_score(middling, T0, RULES) == 3 + 3 + 3


@pytest.mark.parametrize(
    ("figures", "segment"),
    [
        (CustomerFigures(), Segment.NEW),
        (CustomerFigures(member=True), Segment.NEW),  # first order: the first-order offer
        (CustomerFigures(3, Decimal(300), T0 - timedelta(days=200), member=True), Segment.DORMANT),
        (CustomerFigures(12, Decimal(4860), T0 - timedelta(days=5), member=True), Segment.VIP),
        (CustomerFigures(12, Decimal(9000), T0 - timedelta(days=5)), Segment.VIP),
        (CustomerFigures(3, Decimal(320), T0 - timedelta(days=20), member=True), Segment.MEMBER),
        (CustomerFigures(3, Decimal(320), T0 - timedelta(days=20)), Segment.RETURNING),
        (CustomerFigures(3, Decimal(320)), Segment.RETURNING),  # recency unknown: not dormant
    ],
)
def test_segments(figures: CustomerFigures, segment: Segment) -> None:
    assert segment_of(figures, T0, RULES) is segment


def test_segment_thresholds_are_configurable() -> None:
    figures = CustomerFigures(3, Decimal(320), T0 - timedelta(days=40))
    assert segment_of(figures, T0, Segmentation(dormant_after=timedelta(days=30))) is (
        Segment.DORMANT
    )
    assert segment_of(figures, T0, Segmentation(vip_min_score=8)) is Segment.VIP


def test_segment_tiers_and_variant_tiers() -> None:
    short = [ReminderTier(after_created=timedelta(minutes=5))]
    variant_tiers = [ReminderTier(after_created=timedelta(minutes=1))]
    policy = ReminderPolicy(
        segments={Segment.VIP: SegmentPolicy(tiers=short)},
        experiment=Experiment(enabled=True, variants=[Variant(name="fast", tiers=variant_tiers)]),
    )
    assert tiers_for(Segment.VIP, NO_EXPERIMENT, policy) == short
    assert tiers_for(Segment.NEW, NO_EXPERIMENT, policy) == policy.tiers
    assert tiers_for(Segment.VIP, "fast", policy) == variant_tiers


# --- experiments --------------------------------------------------------------------------------


def test_experiments_are_off_by_default() -> None:
    assert assign_variant("C-1", Experiment()) == NO_EXPERIMENT


def test_assignment_is_deterministic_and_respects_shares() -> None:
    experiment = Experiment(
        enabled=True,
        holdout=0.1,
        variants=[Variant(name="a", weight=1), Variant(name="b", weight=3)],
    )
    groups = Counter(assign_variant(f"C-{n}", experiment) for n in range(20_000))
    assert assign_variant("C-42", experiment) == assign_variant("C-42", experiment)
    assert abs(groups[HOLDOUT] / 20_000 - 0.1) < 0.01
    assert abs(groups["b"] / (groups["a"] + groups["b"]) - 0.75) < 0.02
    # A new experiment name reshuffles customers.
    renamed = experiment.model_copy(update={"name": "other"})
    assert [assign_variant(f"C-{n}", renamed) for n in range(50)] != [
        assign_variant(f"C-{n}", experiment) for n in range(50)
    ]


def test_holdout_only_experiment() -> None:
    experiment = Experiment(enabled=True, holdout=0.5)
    groups = {assign_variant(f"C-{n}", experiment) for n in range(100)}
    assert groups == {HOLDOUT, NO_EXPERIMENT}


def test_experiment_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="unique"):
        Experiment(variants=[Variant(name="a"), Variant(name="a")])
    with pytest.raises(ValueError, match="reserved"):
        Experiment(variants=[Variant(name="holdout")])
    with pytest.raises(ValueError, match="needs variants"):
        Experiment(enabled=True)


# --- firing -----------------------------------------------------------------------------------


def due(
    *,
    status: OrderStatus = OrderStatus.UNPAID,
    deadline: datetime = T0 + timedelta(hours=24),
    customer_reminded_at: datetime | None = None,
    order_reminded_at: datetime | None = None,
    timezone: str = "Asia/Shanghai",
    due_at: datetime = T0,
) -> DueReminder:
    return DueReminder(status, deadline, timezone, customer_reminded_at, order_reminded_at, due_at)


def test_a_due_tier_is_sent() -> None:
    assert decide_due_reminder(due(), DEFAULT, T0) == Send()


def test_only_unpaid_orders_before_their_deadline_are_reminded() -> None:
    deadline = T0 + timedelta(hours=1)
    assert reminder_blocker(OrderStatus.UNPAID, deadline, T0) is None
    assert reminder_blocker(OrderStatus.PAID, deadline, T0) == "order_paid"
    assert reminder_blocker(OrderStatus.CANCELLED, deadline, T0) == "order_cancelled"
    assert reminder_blocker(OrderStatus.CLOSED, deadline, T0) == "order_closed"
    assert reminder_blocker(OrderStatus.UNPAID, deadline, deadline) == "deadline_passed"
    assert decide_due_reminder(due(status=OrderStatus.PAID), DEFAULT, T0) == Skip("order_paid")


def test_a_timer_firing_at_night_waits_for_the_morning_or_is_skipped() -> None:
    night = datetime(2026, 11, 22, 23, 30, tzinfo=SHANGHAI)
    morning = datetime(2026, 11, 23, 8, 0, tzinfo=SHANGHAI)
    assert decide_due_reminder(due(), DEFAULT, night) == Defer(morning, "quiet_hours")
    assert decide_due_reminder(due(deadline=morning), DEFAULT, night) == Skip(
        "quiet_hours_until_deadline"
    )


def test_a_customer_reminded_recently_waits_for_the_gap() -> None:
    earlier = T0 - timedelta(minutes=30)
    assert decide_due_reminder(due(customer_reminded_at=earlier), DEFAULT, T0) == Defer(
        earlier + timedelta(hours=2), "customer_gap"
    )
    assert decide_due_reminder(
        due(customer_reminded_at=earlier, deadline=T0 + timedelta(hours=1)), DEFAULT, T0
    ) == Skip("customer_gap_until_deadline")
    long_ago = T0 - timedelta(hours=2)
    assert decide_due_reminder(due(customer_reminded_at=long_ago), DEFAULT, T0) == Send()


def test_a_tier_whose_order_was_listed_after_it_fell_due_is_merged() -> None:
    moment_ago = T0 - timedelta(seconds=1)
    listed = due(
        customer_reminded_at=moment_ago,
        order_reminded_at=moment_ago,
        due_at=T0 - timedelta(seconds=2),
    )
    assert decide_due_reminder(listed, DEFAULT, T0) == AlreadyReminded()
    # Listed before this tier fell due: the tier still has something to say, after the gap.
    earlier = T0 - timedelta(minutes=30)
    before = due(customer_reminded_at=earlier, order_reminded_at=earlier, due_at=T0)
    assert decide_due_reminder(before, DEFAULT, T0) == Defer(
        earlier + timedelta(hours=2), "customer_gap"
    )


def test_template_names_fall_back_from_segment_and_tier() -> None:
    tier = ReminderTier(after_created=timedelta(minutes=15))
    assert template_name(tier, "new", 1, last=False, several=False) == "unpaid_reminder.new.1"
    assert template_name(tier, "vip", 3, last=True, several=False) == "unpaid_reminder.vip.last"
    assert template_name(tier, "vip", 1, last=False, several=True) == "unpaid_reminder.several"
    custom = ReminderTier(after_created=timedelta(minutes=15), template="unpaid_reminder.promo")
    assert template_name(custom, "new", 1, last=False, several=False) == "unpaid_reminder.promo"


def test_points() -> None:
    assert points_for(Decimal("599.90"), Decimal(1)) == 599
    assert points_for(Decimal("599.90"), Decimal(0)) == 0


# --- confirmation -------------------------------------------------------------------------------


def test_dispatch_window_counts_working_days_in_the_customers_calendar() -> None:
    friday_evening = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # 20:00 Friday in Shanghai
    assert add_working_days(friday_evening, 1, "Asia/Shanghai") == date(2026, 11, 30)
    assert dispatch_window(friday_evening, 1, 3, "Asia/Shanghai") == (
        date(2026, 11, 30),
        date(2026, 12, 2),
    )
    # 23:30 UTC on Friday is already Saturday in Shanghai.
    assert add_working_days(datetime(2026, 11, 27, 23, 30, tzinfo=UTC), 0, "Asia/Shanghai") == (
        date(2026, 11, 28)
    )


# --- configuration ------------------------------------------------------------------------------


def test_the_policy_file_configures_segments_coupons_quiet_hours_and_experiments(
    tmp_path: object,
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "followup.toml"
    path.write_text(
        """
[reminder]
min_gap = "90m"
[reminder.quiet_hours]
start = 21:30:00
end = 07:00:00
[reminder.segmentation]
dormant_after = "90d"
[[reminder.segments.vip.tiers]]
after_created = "10m"
[[reminder.segments.vip.tiers]]
before_deadline = "1h"
coupon = { code = "VIP30", amount = "30.00", min_spend = "299.00" }
[reminder.experiment]
enabled = true
holdout = 0.05
[[reminder.experiment.variants]]
name = "control"
[[reminder.experiment.variants]]
name = "early"
[[reminder.experiment.variants.tiers]]
after_created = "5m"
""",
        encoding="utf-8",
    )
    policy = load_policy(path, "reminder", ReminderPolicy)
    assert policy.min_gap == timedelta(minutes=90)
    assert policy.quiet_hours.start == time(21, 30)
    vip_tiers = policy.segments[Segment.VIP].tiers
    assert vip_tiers is not None
    assert vip_tiers[1].coupon is not None
    assert vip_tiers[1].coupon.amount == Decimal("30.00")
    assert [v.name for v in policy.experiment.variants] == ["control", "early"]


def test_a_bad_segment_name_is_refused_naming_the_field(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "followup.toml"
    path.write_text('[[reminder.segments.gold.tiers]]\nafter_created = "5m"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"segments\.gold"):
        load_policy(path, "reminder", ReminderPolicy)

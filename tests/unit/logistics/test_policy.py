"""Detection rules, fact merging and episode decisions, on an injected ``now``."""

from dataclasses import replace
from datetime import datetime, timedelta
from itertools import permutations
from zoneinfo import ZoneInfo

import pytest

from contracts.shop import TrackingStatus
from services.logistics.policy import (
    Dispatch,
    Episode,
    Order,
    Problem,
    Resolution,
    Rule,
    Scan,
    ScanEffect,
    Shipment,
    Stage,
    apply_dispatch,
    apply_scans,
    dispatch_deadlines,
    dispatch_problems,
    next_dispatch_check,
    next_shipment_check,
    promised_update,
    reconcile,
    shipment_problems,
    shipment_resolution,
    wants_pickup_notice,
    wants_progress_update,
)
from services.logistics.settings import LogisticsPolicy, Severity
from services.logistics.working_days import WorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # a Monday
H = timedelta(hours=1)
POLICY = LogisticsPolicy()


def dispatch(
    at: datetime = T0,
    *,
    level: str | None = "express",
    eta: str | None = "2026-11-25",
    carrier: str = "SF Express",
) -> Dispatch:
    return Dispatch("S-1", "O-1", carrier, "SF1", at, eta, level, "上海市", "e-d", at)


def scan(
    status: TrackingStatus,
    at: datetime,
    *,
    eta: str | None = None,
    location: str | None = "杭州",
    event_id: str | None = None,
) -> Scan:
    return Scan("S-1", "O-1", status, at, location, None, eta, event_id or f"e-{at}", at)


def shipped(*facts: Dispatch | Scan) -> Shipment:
    shipment = Shipment("S-1", "O-1")
    for fact in facts:
        if isinstance(fact, Dispatch):
            shipment = apply_dispatch(shipment, fact)
        else:
            shipment, _ = apply_scans(shipment, [fact])
    return shipment


def rules(problems: list[Problem]) -> list[tuple[Rule, Severity]]:
    return [(p.rule, p.severity) for p in problems]


# --- merging facts ----------------------------------------------------------------------------


def test_the_latest_scan_wins_whatever_the_arrival_order() -> None:
    facts: list[Dispatch | Scan] = [
        dispatch(),
        scan(TrackingStatus.IN_TRANSIT, T0 + 2 * H, location="杭州"),
        scan(TrackingStatus.DELIVERY_FAILED, T0 + 20 * H, location="上海"),
        scan(TrackingStatus.OUT_FOR_DELIVERY, T0 + 30 * H, eta="2026-11-26"),
        scan(TrackingStatus.DELIVERY_FAILED, T0 + 32 * H),
        scan(TrackingStatus.IN_TRANSIT, T0 + 2 * H, location="杭州"),  # the same scan again
    ]
    outcomes = {shipped(*order) for order in permutations(facts)}
    assert len(outcomes) == 1
    (shipment,) = outcomes
    assert shipment.last_status is TrackingStatus.DELIVERY_FAILED
    assert shipment.last_scan_at == T0 + 32 * H
    assert shipment.failed_attempts == (T0 + 20 * H, T0 + 32 * H)
    assert shipment.revised_delivery == "2026-11-26"
    assert shipment.dispatched_at == T0
    assert shipment.carrier == "SF Express"


def test_an_old_scan_after_delivery_changes_nothing() -> None:
    delivered = shipped(dispatch(), scan(TrackingStatus.DELIVERED, T0 + 30 * H))
    late_arrival, [effect] = apply_scans(delivered, [scan(TrackingStatus.IN_TRANSIT, T0 + 5 * H)])
    assert effect is ScanEffect.OLDER
    assert late_arrival.last_status is TrackingStatus.DELIVERED
    assert late_arrival.delivered_at == T0 + 30 * H
    assert shipment_problems(late_arrival, T0 + 100 * H, POLICY) == []


def test_a_repeated_scan_is_recognised_and_counts_once() -> None:
    failed = scan(TrackingStatus.DELIVERY_FAILED, T0 + 5 * H, event_id="a")
    once = shipped(dispatch(), failed)
    twice, [effect] = apply_scans(once, [replace(failed, event_id="b")])
    assert effect is ScanEffect.REPEATED
    assert twice.failed_attempts == (T0 + 5 * H,)


def test_scans_before_the_dispatch_event_keep_their_facts() -> None:
    early = shipped(scan(TrackingStatus.IN_TRANSIT, T0 + 3 * H), dispatch(T0))
    assert early.last_status is TrackingStatus.IN_TRANSIT
    assert early.dispatched_at == T0
    assert early.service_level == "express"
    assert early.started_at == T0


def test_a_batch_of_scans_merges_like_one_scan_at_a_time() -> None:
    scans = [
        scan(TrackingStatus.IN_TRANSIT, T0 + 9 * H, eta="2026-11-27"),
        scan(TrackingStatus.DELIVERY_FAILED, T0 + 5 * H),
        scan(TrackingStatus.IN_TRANSIT, T0 + 9 * H, eta="2026-11-27"),
        scan(TrackingStatus.IN_TRANSIT, T0 + 2 * H),
    ]
    together, effects = apply_scans(shipped(dispatch()), scans)
    assert together == shipped(dispatch(), *scans)
    assert effects == [ScanEffect.LATEST, ScanEffect.OLDER, ScanEffect.REPEATED, ScanEffect.OLDER]


def test_same_time_scans_resolve_the_same_way_in_any_order() -> None:
    a = scan(TrackingStatus.OUT_FOR_DELIVERY, T0 + 5 * H)
    b = scan(TrackingStatus.DELIVERED, T0 + 5 * H)
    assert shipped(a, b).last_status is shipped(b, a).last_status is TrackingStatus.DELIVERED


# --- detection --------------------------------------------------------------------------------


def test_stalled_counts_from_dispatch_when_there_is_no_scan_yet() -> None:
    shipment = shipped(dispatch(level="express"))
    assert shipment_problems(shipment, T0 + 23 * H, POLICY) == []
    (problem,) = shipment_problems(shipment, T0 + 24 * H, POLICY)
    assert (problem.rule, problem.severity) == (Rule.STALLED, Severity.YELLOW)
    assert problem.evidence["counted_from"] == "dispatch"
    assert problem.evidence["hours_without_scan"] == 24.0
    assert problem.evidence["threshold_hours"] == 24.0
    assert problem.since == T0 + 24 * H


def test_stalled_counts_from_the_last_scan_by_service_level() -> None:
    shipment = shipped(
        dispatch(level="standard", eta=None), scan(TrackingStatus.IN_TRANSIT, T0 + 10 * H)
    )
    assert shipment_problems(shipment, T0 + 57 * H, POLICY) == []
    assert rules(shipment_problems(shipment, T0 + 58 * H, POLICY)) == [
        (Rule.STALLED, Severity.YELLOW)
    ]
    # Past the long threshold (120 h for standard) it is red.
    assert rules(shipment_problems(shipment, T0 + 130 * H, POLICY)) == [
        (Rule.STALLED, Severity.RED)
    ]


def test_an_unknown_service_level_uses_the_default_and_carriers_have_their_own() -> None:
    policy = LogisticsPolicy.model_validate(
        {"carriers": {"sf express": {"stalled_after": {"express": "12h"}}}}
    )
    assert policy.stall_thresholds("SF Express", "express") == (12 * H, 72 * H)
    assert policy.stall_thresholds("SF Express", "standard") == (48 * H, 120 * H)
    assert policy.stall_thresholds("ZTO", None) == (48 * H, 120 * H)
    shipment = shipped(dispatch(level=None, eta=None))
    assert shipment_problems(shipment, T0 + 30 * H, policy) == []


def test_late_after_the_promised_day_plus_grace() -> None:
    shipment = shipped(dispatch(eta="2026-11-25"), scan(TrackingStatus.IN_TRANSIT, T0 + 60 * H))
    end_of_promised_day = datetime(2026, 11, 26, 0, 0, tzinfo=SHANGHAI)
    assert shipment_problems(shipment, end_of_promised_day + 11 * H, POLICY) == []
    (problem,) = shipment_problems(shipment, end_of_promised_day + 12 * H, POLICY)
    assert (problem.rule, problem.severity) == (Rule.LATE, Severity.YELLOW)
    assert problem.evidence["promised_delivery"] == "2026-11-25"
    assert problem.evidence["estimate_used"] == "promised"


def test_a_revised_estimate_from_a_later_scan_moves_the_lateness() -> None:
    shipment = shipped(
        dispatch(eta="2026-11-25"),
        scan(TrackingStatus.IN_TRANSIT, T0 + 60 * H, eta="2026-11-27T18:00:00+08:00"),
    )
    assert Rule.LATE not in {p.rule for p in shipment_problems(shipment, T0 + 70 * H, POLICY)}
    due = datetime(2026, 11, 27, 18, 0, tzinfo=SHANGHAI) + POLICY.late_grace
    problems = shipment_problems(shipment, due, POLICY)
    assert Rule.LATE in {p.rule for p in problems}
    late = next(p for p in problems if p.rule is Rule.LATE)
    assert late.evidence["estimate_used"] == "revised"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (TrackingStatus.CUSTOMS_HOLD, (Rule.CUSTOMS_HOLD, Severity.YELLOW)),
        (TrackingStatus.EXCEPTION, (Rule.EXCEPTION, Severity.YELLOW)),
        (TrackingStatus.DELIVERY_FAILED, (Rule.DELIVERY_FAILED, Severity.YELLOW)),
        (TrackingStatus.LOST, (Rule.LOST, Severity.RED)),
        (TrackingStatus.RETURNED_TO_SENDER, (Rule.RETURNED_TO_SENDER, Severity.RED)),
    ],
)
def test_carrier_exceptions_act_at_once(
    status: TrackingStatus, expected: tuple[Rule, Severity]
) -> None:
    shipment = shipped(dispatch(), scan(status, T0 + 5 * H))
    assert rules(shipment_problems(shipment, T0 + 5 * H, POLICY)) == [expected]


def test_a_second_failed_attempt_is_red() -> None:
    shipment = shipped(
        dispatch(),
        scan(TrackingStatus.DELIVERY_FAILED, T0 + 5 * H),
        scan(TrackingStatus.OUT_FOR_DELIVERY, T0 + 20 * H),
        scan(TrackingStatus.DELIVERY_FAILED, T0 + 22 * H),
    )
    (problem,) = shipment_problems(shipment, T0 + 22 * H, POLICY)
    assert (problem.rule, problem.severity) == (Rule.DELIVERY_FAILED, Severity.RED)
    assert problem.evidence["failed_attempts"] == 2


def test_a_failed_attempt_stays_the_problem_until_delivered_or_left_for_pickup() -> None:
    failed = shipped(dispatch(), scan(TrackingStatus.DELIVERY_FAILED, T0 + 5 * H))
    again, _ = apply_scans(failed, [scan(TrackingStatus.OUT_FOR_DELIVERY, T0 + 20 * H)])
    (problem,) = shipment_problems(again, T0 + 21 * H, POLICY)
    assert problem.rule is Rule.DELIVERY_FAILED
    assert problem.since == T0 + 5 * H
    pickup, _ = apply_scans(again, [scan(TrackingStatus.AVAILABLE_FOR_PICKUP, T0 + 22 * H)])
    assert shipment_problems(pickup, T0 + 23 * H, POLICY) == []


def test_returned_to_sender_stays_whatever_the_return_journey_scans_say() -> None:
    shipment = shipped(
        dispatch(),
        scan(TrackingStatus.RETURNED_TO_SENDER, T0 + 5 * H),
        scan(TrackingStatus.IN_TRANSIT, T0 + 9 * H),
    )
    assert rules(shipment_problems(shipment, T0 + 200 * H, POLICY)) == [
        (Rule.RETURNED_TO_SENDER, Severity.RED)
    ]
    assert next_shipment_check(shipment, T0 + 10 * H, POLICY) is None


def test_problems_together_lead_with_the_most_serious() -> None:
    shipment = shipped(dispatch(eta="2026-11-24"), scan(TrackingStatus.CUSTOMS_HOLD, T0 + H))
    now = T0 + 80 * H  # stalled red (72 h), late, and held by customs
    assert rules(shipment_problems(shipment, now, POLICY)) == [
        (Rule.STALLED, Severity.RED),
        (Rule.CUSTOMS_HOLD, Severity.YELLOW),
        (Rule.LATE, Severity.YELLOW),
    ]


def test_waiting_for_pickup_is_neither_stalled_nor_late_and_gets_one_helpful_notice() -> None:
    shipment = shipped(
        dispatch(eta="2026-11-24"), scan(TrackingStatus.AVAILABLE_FOR_PICKUP, T0 + 5 * H)
    )
    assert shipment_problems(shipment, T0 + 200 * H, POLICY) == []
    assert next_shipment_check(shipment, T0 + 6 * H, POLICY) is None
    assert wants_pickup_notice(shipment)
    assert not wants_pickup_notice(replace(shipment, pickup_notified=True))


def test_nothing_is_wrong_with_a_delivered_or_cancelled_or_old_shipment() -> None:
    base = shipped(dispatch(eta="2026-11-24"))
    assert shipment_problems(base, T0 + 100 * H, POLICY) != []
    delivered = shipped(dispatch(), scan(TrackingStatus.DELIVERED, T0 + 5 * H))
    assert shipment_problems(delivered, T0 + 100 * H, POLICY) == []
    cancelled = replace(base, order_ended_at=T0 + H)
    assert shipment_problems(cancelled, T0 + 100 * H, POLICY) == []
    assert shipment_resolution(cancelled, T0 + 100 * H, POLICY) is Resolution.SILENT
    assert shipment_problems(base, T0 + timedelta(days=31), POLICY) == []
    assert next_shipment_check(base, T0 + timedelta(days=31), POLICY) is None


def test_the_next_check_is_the_next_threshold_ahead() -> None:
    shipment = shipped(dispatch(eta="2026-11-25"), scan(TrackingStatus.IN_TRANSIT, T0 + 2 * H))
    assert next_shipment_check(shipment, T0 + 3 * H, POLICY) == T0 + 26 * H  # stall (24 h)
    assert next_shipment_check(shipment, T0 + 26 * H, POLICY) == datetime(
        2026, 11, 26, 12, 0, tzinfo=SHANGHAI
    )  # late: end of the promised day plus 12 h
    assert next_shipment_check(shipment, T0 + 49 * H, POLICY) == T0 + 74 * H  # stalled red


def test_progress_updates_are_off_by_default_and_throttled_when_on() -> None:
    shipment = shipped(dispatch(), scan(TrackingStatus.IN_TRANSIT, T0 + 2 * H))
    assert not wants_progress_update(shipment, Episode(), T0 + 2 * H, POLICY)
    on = LogisticsPolicy(progress_updates=True)
    assert wants_progress_update(shipment, Episode(), T0 + 2 * H, on)
    recent = replace(shipment, last_progress_at=T0 + H)
    assert not wants_progress_update(recent, Episode(), T0 + 2 * H, on)
    assert not wants_progress_update(shipment, Episode(1, is_open=True), T0 + 2 * H, on)


# --- dispatch ---------------------------------------------------------------------------------


def test_dispatch_late_after_two_working_days_and_red_after_five() -> None:
    calendar = WorkingCalendar("cn")
    paid = datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)  # the eve of National Day
    order = Order("O-1", paid_at=paid)
    deadlines = dispatch_deadlines(paid, "Asia/Shanghai", POLICY, calendar)
    assert deadlines.due == datetime(2026, 10, 9, 10, 0, tzinfo=SHANGHAI)
    # 14 h on 30 Sep; 8, 9, 10 (a make-up Saturday) and 12 Oct; 10 h of 13 Oct.
    assert deadlines.red == datetime(2026, 10, 13, 10, 0, tzinfo=SHANGHAI)
    assert deadlines.promise == "2 working days (cn)"
    assert dispatch_problems(order, deadlines, deadlines.due - H, POLICY) == []
    (late,) = dispatch_problems(order, deadlines, deadlines.due, POLICY)
    assert (late.rule, late.severity) == (Rule.DISPATCH_LATE, Severity.YELLOW)
    assert late.evidence["paid_at"] == paid.isoformat()
    assert late.evidence["dispatch_due"] == deadlines.due.isoformat()
    (red,) = dispatch_problems(order, deadlines, deadlines.red, POLICY)
    assert red.severity is Severity.RED
    assert next_dispatch_check(order, deadlines, paid, POLICY) == deadlines.due
    assert next_dispatch_check(order, deadlines, deadlines.due, POLICY) == deadlines.red


def test_no_dispatch_problem_once_dispatched_or_cancelled() -> None:
    calendar = WorkingCalendar("cn")
    order = Order("O-1", paid_at=T0)
    deadlines = dispatch_deadlines(T0, "Asia/Shanghai", POLICY, calendar)
    later = deadlines.due + H
    assert dispatch_problems(replace(order, dispatched_at=T0 + H), deadlines, later, POLICY) == []
    assert dispatch_problems(replace(order, ended_at=T0 + H), deadlines, later, POLICY) == []
    assert next_dispatch_check(replace(order, ended_at=T0 + H), deadlines, T0, POLICY) is None


def test_a_clock_time_promise_instead_of_working_days() -> None:
    policy = LogisticsPolicy.model_validate({"dispatch": {"within": "48h"}})
    deadlines = dispatch_deadlines(T0, "Asia/Shanghai", policy, WorkingCalendar("cn"))
    assert (deadlines.due, deadlines.red) == (T0 + 48 * H, T0 + 120 * H)


def test_a_deadline_in_a_year_without_holiday_data_says_so() -> None:
    paid = datetime(2026, 12, 31, 12, 0, tzinfo=SHANGHAI)
    deadlines = dispatch_deadlines(paid, "Asia/Shanghai", POLICY, WorkingCalendar("cn"))
    (problem,) = dispatch_problems(Order("O-1", paid_at=paid), deadlines, deadlines.due, POLICY)
    assert problem.evidence["calendar_note"] == (
        "no holiday data for 2027: counted Monday to Friday"
    )


# --- episodes ---------------------------------------------------------------------------------


def stalled(severity: Severity = Severity.YELLOW) -> Problem:
    return Problem(Rule.STALLED, severity, T0, {"hours_without_scan": 24})


def exception(rule: Rule, severity: Severity = Severity.YELLOW) -> Problem:
    return Problem(rule, severity, T0, {})


def test_the_first_problem_opens_an_episode_with_one_notice() -> None:
    step = reconcile(Episode(), [stalled()], Resolution.BACK_ON_TRACK, T0, POLICY)
    assert step.message is not None
    assert step.message.stage is Stage.NOTICE
    assert step.episode.number == 1
    assert step.episode.next_update_at == T0 + 6 * H  # "a further update the same day"
    assert step.wake_at == T0 + 6 * H
    assert step.escalations == ()
    # Deciding again a moment later (another scan, a re-fired timer) says nothing new.
    again = reconcile(step.episode, [stalled()], Resolution.BACK_ON_TRACK, T0 + H, POLICY)
    assert again.message is None
    assert again.wake_at == T0 + 6 * H


def test_follow_ups_keep_the_promise_at_least_daily() -> None:
    episode = reconcile(Episode(), [stalled()], Resolution.BACK_ON_TRACK, T0, POLICY).episode
    first = reconcile(episode, [stalled()], Resolution.BACK_ON_TRACK, T0 + 6 * H, POLICY)
    assert first.message is not None
    assert first.message.stage is Stage.FOLLOWUP
    assert first.episode.followups == 1
    assert first.episode.next_update_at == T0 + 30 * H
    assert first.message.key_suffix(first.episode) == "1:followup:1"
    second = reconcile(first.episode, [stalled()], Resolution.BACK_ON_TRACK, T0 + 30 * H, POLICY)
    assert second.message is not None
    assert second.message.key_suffix(second.episode) == "1:followup:2"


def test_news_within_an_episode_goes_out_but_not_closer_than_the_minimum_gap() -> None:
    episode = reconcile(Episode(), [stalled()], Resolution.BACK_ON_TRACK, T0, POLICY).episode
    news = [exception(Rule.CUSTOMS_HOLD), stalled()]
    held = reconcile(episode, news, Resolution.BACK_ON_TRACK, T0 + H, POLICY)
    assert held.message is None
    assert held.wake_at == T0 + 2 * H  # min_gap after the notice
    sent = reconcile(episode, news, Resolution.BACK_ON_TRACK, T0 + 2 * H, POLICY)
    assert sent.message is not None
    assert sent.message.stage is Stage.UPDATE
    assert sent.message.problem is not None
    assert sent.message.problem.rule is Rule.CUSTOMS_HOLD
    assert sent.message.key_suffix(sent.episode) == "1:update:customs_hold:yellow"


def test_turning_red_is_told_at_once_and_escalated_once() -> None:
    episode = reconcile(Episode(), [stalled()], Resolution.BACK_ON_TRACK, T0, POLICY).episode
    red = reconcile(episode, [stalled(Severity.RED)], Resolution.BACK_ON_TRACK, T0 + H, POLICY)
    assert red.message is not None
    assert red.message.stage is Stage.UPDATE
    assert [p.rule for p in red.escalations] == [Rule.STALLED]
    later = reconcile(
        red.episode, [stalled(Severity.RED)], Resolution.BACK_ON_TRACK, T0 + 2 * H, POLICY
    )
    assert later.message is None
    assert later.escalations == ()
    lost = reconcile(
        red.episode,
        [exception(Rule.LOST, Severity.RED), stalled(Severity.RED)],
        Resolution.BACK_ON_TRACK,
        T0 + 2 * H,
        POLICY,
    )
    assert [p.rule for p in lost.escalations] == [Rule.LOST]


def test_a_red_first_notice_is_escalated_with_it() -> None:
    step = reconcile(
        Episode(), [exception(Rule.LOST, Severity.RED)], Resolution.BACK_ON_TRACK, T0, POLICY
    )
    assert step.message is not None
    assert step.message.stage is Stage.NOTICE
    assert [p.rule for p in step.escalations] == [Rule.LOST]


def test_resolution_closes_the_episode_with_one_message_and_a_new_problem_opens_another() -> None:
    episode = reconcile(Episode(), [stalled()], Resolution.BACK_ON_TRACK, T0, POLICY).episode
    closed = reconcile(episode, [], Resolution.DELIVERED, T0 + 3 * H, POLICY)
    assert closed.message is not None
    assert (closed.message.stage, closed.message.resolution) == (
        Stage.CLOSING,
        Resolution.DELIVERED,
    )
    assert closed.message.key_suffix(closed.episode) == "1:closing"
    assert not closed.episode.is_open
    assert closed.wake_at is None
    assert reconcile(closed.episode, [], Resolution.DELIVERED, T0 + 4 * H, POLICY).message is None
    reopened = reconcile(closed.episode, [stalled()], Resolution.BACK_ON_TRACK, T0 + 40 * H, POLICY)
    assert reopened.message is not None
    assert reopened.episode.number == 2
    assert reopened.message.key_suffix(reopened.episode) == "2:notice"


def test_a_cancelled_order_closes_without_a_message() -> None:
    episode = reconcile(Episode(), [stalled()], Resolution.BACK_ON_TRACK, T0, POLICY).episode
    closed = reconcile(episode, [], Resolution.SILENT, T0 + H, POLICY)
    assert closed.message is not None
    assert closed.message.stage is Stage.CLOSED_SILENTLY


def test_after_the_last_follow_up_a_person_takes_over() -> None:
    policy = LogisticsPolicy(max_followups=1)
    episode = reconcile(Episode(), [stalled()], Resolution.BACK_ON_TRACK, T0, policy).episode
    episode = reconcile(episode, [stalled()], Resolution.BACK_ON_TRACK, T0 + 6 * H, policy).episode
    handover = reconcile(episode, [stalled()], Resolution.BACK_ON_TRACK, T0 + 30 * H, policy)
    assert handover.message is not None
    assert handover.message.stage is Stage.HANDOVER
    assert handover.episode.handed_over
    assert handover.wake_at is None
    quiet = reconcile(handover.episode, [stalled()], Resolution.BACK_ON_TRACK, T0 + 60 * H, policy)
    assert quiet.message is None
    # Resolved later, the customer still hears the good news.
    done = reconcile(handover.episode, [], Resolution.DELIVERED, T0 + 70 * H, policy)
    assert done.message is not None
    assert done.message.stage is Stage.CLOSING


def test_promised_updates_fall_in_the_shops_daytime() -> None:
    at = datetime(2026, 11, 23, 20, 40, tzinfo=SHANGHAI)
    # 6 h after 20:40 is 02:40: promised for 08:00 instead (11 h 20 min, within a day).
    assert promised_update(at, 6 * H, POLICY) == datetime(2026, 11, 24, 8, 0, tzinfo=SHANGHAI)
    # 24 h after 23:30 is 23:30 again; the next morning would break the daily promise, so
    # the evening before it.
    late = datetime(2026, 11, 23, 23, 30, tzinfo=SHANGHAI)
    assert promised_update(late, 24 * H, POLICY) == datetime(2026, 11, 24, 22, 0, tzinfo=SHANGHAI)
    assert promised_update(T0, 6 * H, POLICY) == T0 + 6 * H  # 16:00 stays


# --- policy file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"followup_every": "30h"}, "at most 24h"),
        ({"first_followup_after": "1h", "min_gap": "2h"}, "not be shorter than min_gap"),
        ({"stalled_after": {"express": "24h"}}, "need 'standard'"),
        ({"stalled_red_after": {"express": "12h", "standard": "5d"}}, "must exceed"),
        ({"dispatch": {"working_days": 3, "red_after_working_days": 2}}, "greater than"),
        ({"dispatch": {"red_within": "5d"}}, "needs within"),
        ({"timezone": "Mars/Olympus"}, "unknown IANA timezone"),
        ({"exception_severity": {"lost": "red"}}, "lacks"),
        ({"stall_after": {}}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_policy_is_refused_with_the_reason(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LogisticsPolicy.model_validate(section)

from datetime import timedelta
from pathlib import Path

import pytest

from contracts.shop import AftersaleKind
from followup.settings import load_policy
from services.aftersales.policy import (
    Case,
    CaseConflict,
    Escalation,
    FactOutcome,
    NextStep,
    Party,
    PromiseKind,
    PromiseOutcome,
    ReturnReminder,
    Stage,
    StageNotice,
    StillOnIt,
    Wakeup,
    apply_fact,
    awaiting,
    next_step,
    promise_settled,
    return_reminders,
)
from services.aftersales.settings import AftersalesPolicy
from tests.unit.aftersales.case_replay import T0, CaseReplay, fact, hours

R = AftersaleKind.RETURN_REFUND
REFUND_ONLY = AftersaleKind.REFUND_ONLY
EXCHANGE = AftersaleKind.EXCHANGE


# --- every path gets one message per stage, in order --------------------------------------


def test_a_return_is_announced_stage_by_stage_and_keeps_every_promise() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(2), fact(Stage.APPROVED, hours(2)))
    replay.at(hours(30), fact(Stage.RETURN_SHIPPED, hours(30)))
    replay.at(hours(50), fact(Stage.RETURN_RECEIVED, hours(50)))
    last = replay.at(hours(60), fact(Stage.REFUNDED, hours(60), amount=None, method="original"))
    replay.at(hours(61), fact(Stage.CLOSED, hours(61)))

    assert replay.names == [
        "requested",
        "approved",
        "return_shipped",
        "return_received",
        "refunded",
        "closed",
    ]
    assert {k: p.outcome for k, p in replay.promises.items()} == {
        PromiseKind.FIRST_ANSWER: PromiseOutcome.KEPT,
        PromiseKind.REFUND: PromiseOutcome.KEPT,
    }
    assert last.receipt_to_refund_s == 10 * 3600
    assert replay.case is not None
    assert not replay.case.breached
    assert replay.decisions[-1].timers == []


def test_refund_only_skips_the_return_and_starts_the_refund_promise_at_approval() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0), kind=REFUND_ONLY))
    approved = replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    assert replay.promises[PromiseKind.REFUND].due_at == hours(25)
    assert {t.wakeup for t in approved.timers} == {Wakeup.PROMISE, Wakeup.PROGRESS}
    replay.at(hours(5), fact(Stage.REFUNDED, hours(5)))
    assert replay.names == ["requested", "approved", "refunded"]
    assert replay.promises[PromiseKind.REFUND].outcome is PromiseOutcome.KEPT


def test_an_exchange_is_held_to_the_replacement_promise_not_a_refund() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0), kind=EXCHANGE))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    replay.at(hours(20), fact(Stage.RETURN_SHIPPED, hours(20)))
    replay.at(hours(40), fact(Stage.RETURN_RECEIVED, hours(40)))
    assert set(replay.promises) == {PromiseKind.FIRST_ANSWER, PromiseKind.REPLACEMENT}
    assert replay.promises[PromiseKind.REPLACEMENT].due_at == hours(88)
    replay.at(hours(70), fact(Stage.CLOSED, hours(70)))
    assert replay.promises[PromiseKind.REPLACEMENT].outcome is PromiseOutcome.KEPT
    assert replay.names[-1] == "closed"


def test_a_rejection_answers_the_request_and_ends_every_timer() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    rejected = replay.at(hours(3), fact(Stage.REJECTED, hours(3), reason="吊牌已剪"))
    assert replay.names == ["requested", "rejected"]
    assert replay.case is not None
    assert replay.case.reject_reason == "吊牌已剪"
    assert replay.promises[PromiseKind.FIRST_ANSWER].outcome is PromiseOutcome.KEPT
    assert rejected.timers == []


# --- out of order and twice ------------------------------------------------------------------


def test_received_after_refunded_is_remembered_but_never_announced() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    replay.at(hours(30), fact(Stage.REFUNDED, hours(30)))
    late = replay.at(hours(31), fact(Stage.RETURN_RECEIVED, hours(28)))

    assert [a.outcome for a in late.applied] == [FactOutcome.LATE]
    assert late.sends == []
    assert replay.names == ["requested", "approved", "refunded"]
    assert replay.case is not None
    assert replay.case.stage is Stage.REFUNDED
    # Both times are known now: the receipt-to-refund figure is taken once, when it can be.
    assert late.receipt_to_refund_s == 2 * 3600
    assert replay.decisions[2].receipt_to_refund_s is None


def test_a_stage_seen_twice_is_a_duplicate_and_says_nothing() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    again = replay.at(hours(2), fact(Stage.APPROVED, hours(1.5)))
    older = replay.at(hours(3), fact(Stage.REQUESTED, hours(0)))
    assert [a.outcome for a in again.applied + older.applied] == [FactOutcome.DUPLICATE] * 2
    assert again.sends == older.sends == []
    assert replay.names == ["requested", "approved"]


def test_a_lower_stage_after_a_higher_one_never_moves_the_case_back() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(30), fact(Stage.RETURN_SHIPPED, hours(30)))
    late = replay.at(hours(31), fact(Stage.APPROVED, hours(2)))
    assert late.applied[0].outcome is FactOutcome.LATE
    assert replay.case is not None
    assert replay.case.stage is Stage.RETURN_SHIPPED
    assert replay.case.times[Stage.APPROVED] == hours(2)
    assert replay.names == ["requested", "return_shipped"]


def test_steps_arriving_together_announce_only_where_the_case_stands() -> None:
    replay = CaseReplay()
    decision = replay.at(
        hours(3),
        fact(Stage.RETURN_RECEIVED, hours(2.5)),
        fact(Stage.REQUESTED, hours(0)),
        fact(Stage.APPROVED, hours(1)),
        fact(Stage.RETURN_SHIPPED, hours(2)),
    )
    assert replay.names == ["return_received"]
    assert [(s.name, s.reason) for s in decision.skips] == [
        ("requested", "superseded"),
        ("approved", "superseded"),
        ("return_shipped", "superseded"),
    ]
    assert [d.stage for d in decision.stage_durations] == [
        Stage.REQUESTED,
        Stage.APPROVED,
        Stage.RETURN_SHIPPED,
    ]


def test_an_outcome_is_still_told_when_the_case_closes_in_the_same_breath() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0), kind=REFUND_ONLY))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    replay.at(hours(5), fact(Stage.CLOSED, hours(4.9)), fact(Stage.REFUNDED, hours(4.8)))
    assert replay.names[-2:] == ["refunded", "closed"]


def test_a_rejection_overturned_later_is_followed_by_the_approval() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(2), fact(Stage.REJECTED, hours(2)))
    overturned = replay.at(hours(8), fact(Stage.APPROVED, hours(8)))
    stale_answer = replay.at(hours(9), fact(Stage.REJECTED, hours(1)))
    assert overturned.applied[0].outcome is FactOutcome.ADVANCED
    assert stale_answer.applied[0].outcome is FactOutcome.DUPLICATE
    assert replay.names == ["requested", "rejected", "approved"]
    assert replay.case is not None
    assert replay.case.stage is Stage.APPROVED


def test_a_case_from_another_order_is_refused() -> None:
    case, _ = apply_fact(None, fact(Stage.REQUESTED, hours(0)))
    with pytest.raises(CaseConflict, match="belongs to order O-1"):
        apply_fact(case, fact(Stage.APPROVED, hours(1), order_id="O-2"))


def test_the_first_report_of_each_detail_wins() -> None:
    case, _ = apply_fact(None, fact(Stage.REFUNDED, hours(5), method="card", currency="CNY"))
    case, _ = apply_fact(case, fact(Stage.REFUNDED, hours(6), method="alipay"))
    assert case.refund_method == "card"
    case, _ = apply_fact(case, fact(Stage.REQUESTED, hours(0), kind=EXCHANGE, reason="偏小"))
    assert (case.kind, case.reason, case.stage) == (EXCHANGE, "偏小", Stage.REFUNDED)


# --- promises -------------------------------------------------------------------------------


def test_an_unanswered_request_is_escalated_once_at_the_deadline() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    assert replay.run_until(hours(12) - timedelta(seconds=1)) == []
    fired = replay.run_until(hours(12))
    assert fired == [(hours(12), "escalation.first_answer")]
    breach = replay.sent[-1][1]
    assert isinstance(breach, Escalation)
    assert breach.due_at == hours(12)
    assert replay.promises[PromiseKind.FIRST_ANSWER].outcome is PromiseOutcome.BREACHED
    assert replay.case is not None
    assert replay.case.breached
    # The late answer does not undo the breach, and is not escalated again.
    replay.at(hours(14), fact(Stage.APPROVED, hours(14)))
    assert replay.promises[PromiseKind.FIRST_ANSWER].outcome is PromiseOutcome.BREACHED
    assert replay.names.count("escalation.first_answer") == 1


def test_a_refund_not_paid_within_a_day_of_receipt_is_escalated_and_the_customer_told() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    replay.at(hours(20), fact(Stage.RETURN_SHIPPED, hours(20)))
    replay.at(hours(40), fact(Stage.RETURN_RECEIVED, hours(40)))
    fired = replay.run_until(hours(64))
    # One alert for operations, not one per rule that noticed the same silence.
    assert fired == [(hours(64), "still_on_it.1"), (hours(64), "escalation.refund")]
    refunded = replay.at(hours(70), fact(Stage.REFUNDED, hours(70)))
    assert replay.promises[PromiseKind.REFUND].outcome is PromiseOutcome.BREACHED
    assert refunded.sends == [StageNotice(Stage.REFUNDED, refunded.applied[0].fact)]
    assert refunded.case.breached  # the refund message apologises for the wait


def test_a_deadline_missed_while_nobody_looked_is_counted_but_not_escalated() -> None:
    replay = CaseReplay()
    replay.at(hours(40), fact(Stage.RETURN_RECEIVED, hours(40)))
    # The service was down: the refund and its receipt arrive together, a day late.
    decision = replay.at(hours(70), fact(Stage.REFUNDED, hours(66)))
    [change] = decision.promises
    assert change.promise.outcome is PromiseOutcome.BREACHED
    assert not change.escalate
    assert [s.name for s in decision.sends] == ["refunded"]
    assert decision.case.breached


def test_a_request_that_arrives_after_its_deadline_apologises_and_escalates_at_once() -> None:
    replay = CaseReplay()
    decision = replay.at(hours(13), fact(Stage.REQUESTED, hours(0)))
    assert [s.name for s in decision.sends] == ["requested", "escalation.first_answer"]
    assert decision.case.breached


def test_a_withdrawn_request_voids_the_first_answer_promise() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(2), fact(Stage.CLOSED, hours(2)))
    assert replay.promises[PromiseKind.FIRST_ANSWER].outcome is PromiseOutcome.VOID
    assert replay.decisions[-1].timers == []


@pytest.mark.parametrize(
    ("kind", "stages", "expected"),
    [
        (PromiseKind.FIRST_ANSWER, {}, None),
        (PromiseKind.FIRST_ANSWER, {Stage.RETURN_SHIPPED: 5}, (5, True)),
        (PromiseKind.FIRST_ANSWER, {Stage.CLOSED: 3, Stage.APPROVED: 4}, (3, False)),
        (PromiseKind.REFUND, {Stage.REFUNDED: 9, Stage.CLOSED: 10}, (9, True)),
        (PromiseKind.REFUND, {Stage.REJECTED: 2}, (2, False)),
        (PromiseKind.REPLACEMENT, {Stage.REFUNDED: 8}, (8, True)),
        (PromiseKind.REPLACEMENT, {Stage.REJECTED: 8}, (8, False)),
        (PromiseKind.PROGRESS, {Stage.CLOSED: 1}, None),
    ],
)
def test_what_settles_each_promise(
    kind: PromiseKind, stages: dict[Stage, int], expected: tuple[int, bool] | None
) -> None:
    case = Case(
        "R-1", "O-1", Stage.REQUESTED, hours(0), times={s: hours(h) for s, h in stages.items()}
    )
    settled = promise_settled(case, kind)
    assert settled == (None if expected is None else (hours(expected[0]), expected[1]))


# --- progress: never silent for a day while the shop has the next step ----------------------


def test_a_silent_case_gets_a_still_on_it_message_every_day_and_escalates_each_stall() -> None:
    policy = AftersalesPolicy(first_answer_within=timedelta(hours=72))
    replay = CaseReplay(policy)
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    fired = replay.run_until(hours(49))
    assert fired == [
        (hours(24), "still_on_it.1"),
        (hours(24), "escalation.progress.1"),
        (hours(48), "still_on_it.2"),
        (hours(48), "escalation.progress.2"),
    ]
    update = replay.sent[-2][1]
    assert isinstance(update, StillOnIt)
    assert update.silent_since == hours(24)
    assert [d.progress for d in replay.decisions[1:]] == [[PromiseOutcome.BREACHED]] * 2


def test_stalls_reach_only_the_customer_when_escalation_is_off() -> None:
    replay = CaseReplay(
        AftersalesPolicy(escalate_stalls=False, first_answer_within=timedelta(days=3))
    )
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    assert replay.run_until(hours(24)) == [(hours(24), "still_on_it.1")]


def test_a_real_step_in_time_keeps_the_progress_promise_and_resets_the_clock() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0), kind=REFUND_ONLY))
    approved = replay.at(hours(10), fact(Stage.APPROVED, hours(10)))
    assert approved.progress == [PromiseOutcome.KEPT]
    progress = [t for t in approved.timers if t.wakeup is Wakeup.PROGRESS]
    assert [t.due_at for t in progress] == [hours(34)]


def test_no_still_on_it_while_the_customer_has_to_send_the_item() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    fired = replay.run_until(hours(24 * 5))
    assert [name for _, name in fired] == ["return_reminder"]


def test_a_return_in_transit_is_covered_by_the_progress_promise() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    replay.at(hours(5), fact(Stage.RETURN_SHIPPED, hours(5)))
    assert [n for _, n in replay.run_until(hours(29))] == ["still_on_it.1", "escalation.progress.1"]


# --- customer side: bring the item back -----------------------------------------------------


def test_an_approved_return_not_shipped_gets_a_reminder_then_a_final_one() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    fired = replay.run_until(hours(1) + timedelta(days=8))
    assert fired == [
        (hours(1) + timedelta(days=3), "return_reminder"),
        (hours(1) + timedelta(days=6), "return_final_reminder"),
    ]
    final = replay.sent[-1][1]
    assert isinstance(final, ReturnReminder)
    assert final.final
    assert replay.decisions[-1].timers == []


def test_shipping_the_item_stops_the_reminders_and_cancels_the_queued_one() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    approved = replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    assert approved.cancels == ["requested"]  # each overtaken message is cancelled once
    replay.run_until(hours(1) + timedelta(days=3))
    shipped = replay.at(hours(80), fact(Stage.RETURN_SHIPPED, hours(80)))
    assert sorted(shipped.cancels) == ["approved", "return_reminder"]
    assert all(t.wakeup is not Wakeup.RETURN_REMINDER for t in shipped.timers)
    assert "return_final_reminder" not in [n for _, n in replay.run_until(hours(24 * 10))]


def test_a_late_approval_skips_to_the_final_reminder_and_never_after_the_window() -> None:
    policy = AftersalesPolicy(stale_after=timedelta(days=30))
    replay = CaseReplay(policy)
    decision = replay.at(hours(24 * 6.5), fact(Stage.APPROVED, hours(0), kind=None))
    assert decision.sends == [StageNotice(Stage.APPROVED, decision.applied[0].fact)]
    # The kind arrives with the request: now we know the customer has an item to send.
    requested = replay.at(hours(24 * 6.5), fact(Stage.REQUESTED, hours(-1)))
    assert [s.name for s in requested.sends] == ["return_final_reminder"]
    assert [(s.name, s.reason) for s in requested.skips] == [
        ("return_reminder", "final_reminder_due")
    ]

    too_late = CaseReplay(policy)
    too_late.at(hours(24 * 8), fact(Stage.REQUESTED, hours(-1)), fact(Stage.APPROVED, hours(0)))
    assert "return_final_reminder" not in too_late.names
    assert ("return_final_reminder", "return_window_over") in [
        (s.name, s.reason) for s in too_late.decisions[-1].skips
    ]


def test_the_first_reminder_is_dropped_when_it_would_not_come_before_the_final_one() -> None:
    policy = AftersalesPolicy(
        return_window=timedelta(days=3), return_reminder_after=timedelta(days=2)
    )
    case = Case("R-1", "O-1", Stage.APPROVED, T0, kind=R, times={Stage.APPROVED: T0})
    assert return_reminders(case, policy) == [ReturnReminder(True, T0 + timedelta(days=2))]


# --- stale history, unknown kinds -----------------------------------------------------------


def test_a_replayed_history_updates_the_case_but_says_nothing_and_promises_nothing() -> None:
    replay = CaseReplay()
    decision = replay.at(hours(24 * 30), fact(Stage.REQUESTED, hours(0)))
    assert decision.sends == []
    assert [(s.name, s.reason) for s in decision.skips] == [("requested", "stale_event")]
    assert replay.promises[PromiseKind.FIRST_ANSWER].outcome is PromiseOutcome.UNTRACKED
    assert decision.timers == []
    # ...and a fresh step on that case is told normally.
    fresh = replay.at(hours(24 * 30), fact(Stage.APPROVED, hours(24 * 30)))
    assert [s.name for s in fresh.sends] == ["approved"]


def test_approval_without_the_request_waits_to_learn_who_acts() -> None:
    replay = CaseReplay()
    decision = replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    assert decision.case.kind is None
    assert awaiting(decision.case) is Party.NOBODY
    assert decision.timers == []
    later = replay.at(hours(2), fact(Stage.REQUESTED, hours(0), kind=REFUND_ONLY))
    assert later.sends == []  # the request is older than the approval: nothing to say
    assert {t.wakeup for t in later.timers} == {Wakeup.PROMISE, Wakeup.PROGRESS}
    assert replay.promises[PromiseKind.FIRST_ANSWER].outcome is PromiseOutcome.KEPT


@pytest.mark.parametrize(
    ("stage", "kind", "party", "step", "due_h"),
    [
        (Stage.REQUESTED, R, Party.SHOP, NextStep.ANSWER, 12),
        (Stage.APPROVED, R, Party.CUSTOMER, NextStep.SHIP_BACK, 1 + 24 * 7),
        (Stage.APPROVED, EXCHANGE, Party.CUSTOMER, NextStep.SHIP_BACK, 1 + 24 * 7),
        (Stage.APPROVED, REFUND_ONLY, Party.SHOP, NextStep.REFUND, 25),
        (Stage.APPROVED, None, Party.NOBODY, None, None),
        (Stage.RETURN_SHIPPED, R, Party.SHOP, NextStep.RECEIVE_RETURN, None),
        (Stage.RETURN_RECEIVED, R, Party.SHOP, NextStep.REFUND, 27),
        (Stage.RETURN_RECEIVED, EXCHANGE, Party.SHOP, NextStep.REPLACEMENT, 51),
        (Stage.REFUNDED, R, Party.NOBODY, None, None),
        (Stage.REJECTED, R, Party.NOBODY, None, None),
        (Stage.CLOSED, EXCHANGE, Party.NOBODY, None, None),
    ],
)
def test_who_acts_next_and_by_when(
    stage: Stage,
    kind: AftersaleKind | None,
    party: Party,
    step: NextStep | None,
    due_h: int | None,
) -> None:
    times = {Stage.REQUESTED: hours(0), Stage.APPROVED: hours(1), Stage.RETURN_RECEIVED: hours(3)}
    case = Case("R-1", "O-1", stage, hours(3), kind=kind, times=times)
    plan = next_step(case, AftersalesPolicy())
    assert awaiting(case) is party
    assert (plan.step if plan else None) is step
    assert (plan.due_at if plan else None) == (hours(due_h) if due_h is not None else None)


def test_a_promised_time_already_past_is_never_quoted() -> None:
    case = Case("R-1", "O-1", Stage.REQUESTED, hours(0), kind=R, times={Stage.REQUESTED: hours(0)})
    plan = next_step(case, AftersalesPolicy())
    assert plan is not None
    assert plan.quoted(hours(11)) == hours(12)
    assert plan.quoted(hours(12)) is None


def test_settings_refuse_a_final_reminder_outside_the_window() -> None:
    with pytest.raises(ValueError, match="final_reminder_before must be shorter"):
        AftersalesPolicy(return_window=timedelta(days=1), final_reminder_before=timedelta(days=2))
    policy = AftersalesPolicy.model_validate(
        {"refund_arrival": {"card": "5d"}, "progress_every": "12h"}
    )
    assert policy.refund_arrival_for("card") == timedelta(days=5)
    assert policy.refund_arrival_for("paypal") == timedelta(days=3)
    assert policy.progress_every == timedelta(hours=12)


def test_the_documented_policy_is_the_built_in_default_and_the_demo_policy_is_valid() -> None:
    root = Path(__file__).resolve().parents[3] / "deploy"
    documented = load_policy(root / "followup.toml", "aftersales", AftersalesPolicy)
    assert documented == AftersalesPolicy()
    demo = load_policy(root / "demo.toml", "aftersales", AftersalesPolicy)
    assert demo.progress_every == timedelta(seconds=45)


def test_only_messages_that_went_out_are_withdrawn() -> None:
    replay = CaseReplay()
    together = replay.at(hours(2), fact(Stage.REQUESTED, hours(0)), fact(Stage.APPROVED, hours(1)))
    assert [(s.name, s.reason) for s in together.skips] == [("requested", "superseded")]
    shipped = replay.at(hours(30), fact(Stage.RETURN_SHIPPED, hours(30)))
    assert shipped.cancels == ["approved"]  # "requested" never went out: nothing to withdraw

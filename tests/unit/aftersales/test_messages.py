from datetime import timedelta
from typing import Any

import pytest

from contracts.notifications import NotificationKind, Priority
from contracts.shop import AftersaleKind
from services.aftersales.messages import OrderFacts, Outgoing, compose, message_key, refund_method
from services.aftersales.policy import Case, PromiseKind, Stage
from services.aftersales.settings import AftersalesPolicy
from tests.unit.aftersales.case_replay import CaseReplay, fact, hours, utc

ORDER = OrderFacts("O-1", "王女士", ("羊毛混纺大衣", "羊绒围巾"), "CNY", "wechat_pay")
POLICY = AftersalesPolicy()


def composed(replay: CaseReplay, order: OrderFacts | None = ORDER) -> list[Outgoing]:
    """The messages of the replay's last decision, as the service would word them."""
    decision = replay.decisions[-1]
    now = replay.sent[-1][0] if replay.sent else hours(0)
    return [
        compose(
            intent,
            decision.case,
            order=order,
            promises=replay.promises,
            policy=replay.policy,
            now=now,
        )
        for intent in decision.sends
    ]


def test_each_stage_message_names_its_stage_and_kind_and_carries_machine_values() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0), reason="尺码偏小"))
    [requested] = composed(replay)
    assert requested.template == "aftersale_progress.requested.return_refund"
    assert requested.kind is NotificationKind.AFTERSALE_PROGRESS
    assert requested.idempotency_key == "aftersale_progress:R-1:requested"
    assert requested.priority is Priority.HIGH
    v = requested.variables
    assert (v["order_id"], v["case_id"], v["kind"], v["stage"]) == (
        "O-1",
        "R-1",
        "return_refund",
        "requested",
    )
    assert (v["customer_name"], v["item_title"], v["item_count"]) == ("王女士", "羊毛混纺大衣", 2)
    assert (v["amount"], v["currency"], v["reason"]) == ("599.00", "CNY", "尺码偏小")
    assert v["answer_by"] == utc(hours(12))
    assert v["next_step"] == "answer"
    assert v["next_update_by"] == utc(hours(24))
    assert v["apologise"] is False
    assert requested.meta["rule"] == "stage_notice"
    assert requested.meta["promises"] == {
        "first_answer": {"due_at": utc(hours(12)), "outcome": "open"}
    }
    assert (requested.source_event_id, requested.source_event_time) == (
        "evt-R-1-requested-1000",
        hours(0),
    )


def test_every_customer_message_gets_the_same_variables() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    first = composed(replay)[0]
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    second = composed(replay)[0]
    assert set(first.variables) == set(second.variables)


def test_an_approved_return_says_by_when_to_send_it_back() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    [approved] = composed(replay)
    assert approved.variables["ship_back_by"] == utc(hours(1) + timedelta(days=7))
    assert approved.variables["refund_within_hours"] == 24
    assert approved.variables["refund_method"] == "wechat_pay"  # the order's payment


def test_refund_only_approval_quotes_the_refund_deadline() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0), kind=AftersaleKind.REFUND_ONLY))
    replay.at(hours(2), fact(Stage.APPROVED, hours(2)))
    [approved] = composed(replay)
    assert approved.template == "aftersale_progress.approved.refund_only"
    assert approved.variables["refund_by"] == utc(hours(26))
    assert approved.variables["ship_back_by"] is not None  # present for any template, unused


def test_the_refund_message_says_when_the_money_arrives_for_that_method() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.RETURN_RECEIVED, hours(0)))
    replay.at(hours(3), fact(Stage.REFUNDED, hours(3), amount=None, method="card"))
    [refunded] = composed(replay)
    assert refunded.variables["refund_method"] == "card"
    assert refunded.variables["money_expected_by"] == utc(hours(3) + timedelta(days=7))
    assert refunded.variables["money_expected_within_hours"] == 24 * 7
    # The amount asked for is not known and the refund named none: no amount is shown.
    assert (refunded.variables["amount"], refunded.variables["currency"]) == (None, None)


def test_the_closing_message_says_until_when_the_case_can_be_reopened() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.CLOSED, hours(0)))
    [closed] = composed(replay, order=None)
    assert closed.template == "aftersale_progress.closed"  # kind unknown: the stage's own
    assert closed.variables["reopen_by"] == utc(hours(0) + timedelta(days=15))
    assert closed.variables["customer_name"] is None
    assert closed.variables["item_count"] == 0


@pytest.mark.parametrize(
    ("given", "paid", "expected"),
    [
        ("original", "alipay", "alipay"),
        (None, "alipay", "alipay"),
        ("card", "alipay", "card"),
        ("original", None, None),
    ],
)
def test_original_refund_method_is_how_the_order_was_paid(
    given: str | None, paid: str | None, expected: str | None
) -> None:
    case = Case("R-1", "O-1", Stage.REFUNDED, hours(0), refund_method=given)
    assert refund_method(case, OrderFacts("O-1", paid_method=paid)) == expected


def test_a_broken_promise_is_escalated_with_its_evidence_and_without_a_customer() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.RETURN_RECEIVED, hours(0)))
    replay.run_until(hours(24))
    still_on_it, escalation = composed(replay)
    assert escalation.kind is NotificationKind.OPS_ESCALATION
    assert escalation.template == "ops_escalation.aftersales.refund"
    assert escalation.idempotency_key == "ops_escalation:aftersales:R-1:escalation.refund"
    assert escalation.priority is Priority.CRITICAL
    assert escalation.variables["promise"] == "refund"
    assert escalation.variables["due_at"] == utc(hours(24))
    assert escalation.variables["overdue_minutes"] == 0
    meta: Any = escalation.meta
    assert meta["rule"] == "refund_breached"
    assert meta["promises"]["refund"]["outcome"] == "breached"

    assert still_on_it.template == "aftersale_progress.still_on_it"
    assert still_on_it.variables["apologise"] is True
    assert still_on_it.variables["overdue"] is True
    assert still_on_it.variables["next_step"] == "refund"
    assert still_on_it.variables["next_step_by"] is None  # never quote a time gone by
    assert still_on_it.meta["silent_since"] == utc(hours(0))
    assert still_on_it.expires_at == hours(48)


def test_a_stall_escalation_says_since_when_the_case_is_silent() -> None:
    replay = CaseReplay(AftersalesPolicy(first_answer_within=timedelta(days=3)))
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.run_until(hours(48))
    _, escalation = composed(replay)
    assert escalation.name == "escalation.progress.2"
    assert escalation.priority is Priority.HIGH
    assert escalation.variables["silent_since"] == utc(hours(24))
    assert escalation.variables["stall_number"] == 2


def test_reminders_are_lower_priority_and_expire_with_the_return_window() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0)))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    replay.run_until(hours(1) + timedelta(days=6))
    [final] = composed(replay)
    assert final.template == "aftersale_progress.return_reminder.final"
    assert final.variables["final"] is True
    assert final.priority is Priority.NORMAL
    assert final.expires_at == hours(1) + timedelta(days=7)


def test_a_case_id_too_long_for_the_key_is_replaced_by_its_digest() -> None:
    long_id = "R-" + "9" * 300
    key = message_key(NotificationKind.AFTERSALE_PROGRESS, long_id, "still_on_it.12")
    assert len(key) <= 200
    assert key.startswith("aftersale_progress:sha256-")
    assert key.endswith(":still_on_it.12")
    assert key == message_key(NotificationKind.AFTERSALE_PROGRESS, long_id, "still_on_it.12")
    assert key != message_key(NotificationKind.AFTERSALE_PROGRESS, long_id + "0", "still_on_it.12")


def test_the_promise_evidence_lists_every_promise_of_the_case() -> None:
    replay = CaseReplay()
    replay.at(hours(0), fact(Stage.REQUESTED, hours(0), kind=AftersaleKind.REFUND_ONLY))
    replay.at(hours(1), fact(Stage.APPROVED, hours(1)))
    [approved] = composed(replay)
    promises: Any = approved.meta["promises"]
    assert set(promises) == {PromiseKind.FIRST_ANSWER, PromiseKind.REFUND}
    assert promises["first_answer"]["outcome"] == "kept"

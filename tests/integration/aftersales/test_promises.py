"""The shop's promises as durable timers in PostgreSQL, fired on a manual clock: a request left
unanswered, a refund paid late, a case gone silent; each breach escalated to operations once,
counted, and apologised for in the message that finally resolves the case."""

from datetime import datetime, timedelta

import pytest

from tests.integration.aftersales.conftest import T0, Rig, gauge, utc
from tests.integration.aftersales.shop import aftersale

pytestmark = pytest.mark.integration


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


async def test_broken_promises_are_escalated_once_and_apologised_for(rig: Rig) -> None:
    await rig.publish(
        aftersale("requested", "R-10", "O-10", T0),
        aftersale("requested", "R-11", "O-11", T0, amount="599.00", currency="CNY"),
        aftersale(
            "requested", "R-12", "O-12", T0, kind="refund_only", amount="59.00", currency="CNY"
        ),
        aftersale("requested", "R-13", "O-13", T0, kind="exchange"),
    )
    await rig.quiet()
    for h, events in (
        (
            1,
            [
                aftersale("approved", "R-11", "O-11", hours(1)),
                aftersale("approved", "R-12", "O-12", hours(1)),
                aftersale("approved", "R-13", "O-13", hours(1)),
            ],
        ),
        (
            2,
            [
                aftersale("return_shipped", "R-11", "O-11", hours(2)),
                aftersale("return_shipped", "R-13", "O-13", hours(2)),
            ],
        ),
        (
            3,
            [
                aftersale("return_received", "R-11", "O-11", hours(3)),
                aftersale("return_received", "R-13", "O-13", hours(3)),
            ],
        ),
        (5, [aftersale("refunded", "R-12", "O-12", hours(5), method="alipay")]),
    ):
        rig.clock.set(hours(h))
        await rig.publish(*events)
        await rig.quiet()
    assert (
        await rig.db.fetchval(
            "SELECT count(*) FROM aftersales.timers WHERE kind = 'aftersale_promise'"
        )
        == 3
    )  # R-10's first answer, R-11's refund, R-13's replacement; R-12 kept both of its own

    # 12 h: R-10 has had no answer. Operations hear it; the customer not yet.
    await rig.advance(timedelta(hours=7))
    [first_answer] = [s for s in await rig.sends("R-10") if s["kind"] == "ops_escalation"]
    assert first_answer["template"] == "ops_escalation.aftersales.first_answer"
    assert (
        first_answer["idempotency_key"] == "ops_escalation:aftersales:R-10:escalation.first_answer"
    )
    assert (first_answer["order_id"], first_answer["case_id"]) == ("O-10", "R-10")
    assert {"customer_id", "locale", "timezone"}.isdisjoint(first_answer)
    assert first_answer["priority"] == "high"
    assert first_answer["variables"]["due_at"] == utc(hours(12))
    assert first_answer["meta"]["promise"] == "first_answer"
    assert first_answer["meta"]["promises"]["first_answer"]["outcome"] == "breached"
    await gauge(rig, "followup_aftersales_overdue_cases", 1, promise="first_answer")

    # 24 h: a day of silence on R-10: the customer gets a 'still on it', operations a stall.
    await rig.advance(timedelta(hours=12))
    assert await rig.names("R-10") == [
        "requested",
        "escalation.first_answer",
        "still_on_it.1",
        "escalation.progress.1",
    ]
    still = (await rig.sends("R-10"))[2]
    assert still["template"] == "aftersale_progress.still_on_it"
    assert still["variables"]["apologise"] is True
    assert still["variables"]["overdue"] is True
    assert still["variables"]["next_step"] == "answer"
    assert still["variables"]["next_step_by"] is None  # the promised time is gone: not quoted
    assert still["variables"]["next_update_by"] == utc(hours(48))
    assert still["meta"]["silent_since"] == utc(T0)
    assert datetime.fromisoformat(still["expires_at"]) == hours(48)

    # 27 h: R-11's refund is a day overdue after the warehouse got the item back.
    await rig.advance(timedelta(hours=3))
    r11 = await rig.sends("R-11")
    assert [s["idempotency_key"].rsplit(":", 1)[-1] for s in r11[-2:]] == [
        "still_on_it.1",
        "escalation.refund",
    ]  # one alert for operations, not one per rule that noticed the same silence
    refund_alert = r11[-1]
    assert refund_alert["priority"] == "critical"
    assert refund_alert["variables"]["promise"] == "refund"
    assert refund_alert["variables"]["amount"] == "599.00"

    # 28 h: both cases finally move; the messages apologise for the wait.
    rig.clock.set(hours(28))
    await rig.publish(
        aftersale("approved", "R-10", "O-10", hours(28)),
        aftersale("refunded", "R-11", "O-11", hours(28), amount="599.00", currency="CNY"),
    )
    await rig.quiet()
    approved = (await rig.sends("R-10"))[-1]
    refunded = (await rig.sends("R-11"))[-1]
    assert approved["meta"]["stage"] == "approved"
    assert refunded["meta"]["stage"] == "refunded"
    assert approved["variables"]["apologise"] is True
    assert refunded["variables"]["apologise"] is True
    assert (await rig.sends("R-12"))[-1]["variables"]["apologise"] is False

    # Nothing fires twice, however long the clock runs on.
    await rig.advance(timedelta(days=3))
    escalations = [s["idempotency_key"] for s in await rig.sends() if s["kind"] == "ops_escalation"]
    assert sorted(escalations) == [
        "ops_escalation:aftersales:R-10:escalation.first_answer",
        "ops_escalation:aftersales:R-10:escalation.progress.1",
        "ops_escalation:aftersales:R-11:escalation.refund",
        # The exchange never completes: a stall at 27 h, then its replacement deadline (51 h),
        # noticed when the clock jumps to 100 h: one alert, not a burst of missed stalls.
        "ops_escalation:aftersales:R-13:escalation.progress.1",
        "ops_escalation:aftersales:R-13:escalation.replacement",
    ]
    r13 = {s["idempotency_key"].rsplit(":", 1)[-1]: s for s in await rig.sends("R-13")}
    assert r13["escalation.replacement"]["template"] == "ops_escalation.aftersales.replacement"
    assert r13["escalation.replacement"]["variables"]["due_at"] == utc(hours(51))
    assert r13["still_on_it.2"]["variables"]["next_step"] == "replacement"
    assert r13["still_on_it.2"]["variables"]["overdue"] is True
    counted = {
        (promise, outcome): await rig.metric(
            "followup_aftersales_promises_total", promise=promise, outcome=outcome
        )
        for promise in ("first_answer", "refund", "replacement", "progress")
        for outcome in ("kept", "breached")
    }
    assert counted == {
        ("first_answer", "kept"): 3,
        ("first_answer", "breached"): 1,
        ("refund", "kept"): 1,
        ("refund", "breached"): 1,
        ("replacement", "kept"): 0,
        ("replacement", "breached"): 1,
        ("progress", "kept"): 8,
        ("progress", "breached"): 4,
    }
    for promise, n in (("first_answer", 1), ("refund", 1), ("replacement", 1), ("progress", 2)):
        assert await rig.metric("followup_aftersales_escalations_total", promise=promise) == n
    await gauge(rig, "followup_aftersales_overdue_cases", 1)  # only the exchange still owed
    await gauge(rig, "followup_aftersales_overdue_cases", 1, promise="replacement")

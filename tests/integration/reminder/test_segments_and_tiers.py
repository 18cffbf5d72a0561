"""Tiers and wording follow each customer's segment; quiet hours; late events."""

from datetime import datetime, timedelta

import pytest

from tests.integration.reminder.conftest import (
    SHANGHAI,
    T0,
    ReminderUnderTest,
    order_event,
    paid_event,
)

pytestmark = pytest.mark.integration

POLICY = """
[reminder]
min_gap = "1h"

[[reminder.segments.vip.tiers]]
after_created = "15m"
[[reminder.segments.vip.tiers]]
after_created = "3h"
coupon = { code = "VIP30", amount = "30.00", min_spend = "299.00" }
[[reminder.segments.vip.tiers]]
before_deadline = "2h"
"""


@pytest.fixture
def policy_text() -> str:
    return POLICY


async def test_tiers_and_wording_follow_each_customers_segment(
    reminder: ReminderUnderTest,
) -> None:
    r = reminder
    # A customer the platform knows nothing about, whose first order the service sees paid:
    # the service's own figures make the next order a returning customer's.
    await r.orders(order_event("O-R0", at=T0 - timedelta(minutes=5), customer_id="C-ret"))
    await r.payments(paid_event("O-R0", at=T0 - timedelta(minutes=1)))
    await r.wait_for(
        lambda: r.db.fetchval(
            "SELECT paid_orders FROM reminder.customers WHERE customer_id = 'C-ret'"
        ),
        lambda n: n == 1,
        "the payment counted in the customer's figures",
    )
    await r.orders(
        order_event("O-NEW", at=T0, customer_id="C-new", stock_left=2),
        order_event(
            "O-MEM",
            at=T0,
            customer_id="C-mem",
            member_level="gold",
            paid_orders=3,
            total_spent="320.00",
            last_paid_at=(T0 - timedelta(days=20)).isoformat(),
        ),
        order_event(
            "O-VIP",
            at=T0,
            customer_id="C-vip",
            member_level="gold",
            paid_orders=12,
            total_spent="4860.00",
            last_paid_at=(T0 - timedelta(days=5)).isoformat(),
        ),
        order_event(
            "O-DOR",
            at=T0,
            customer_id="C-dor",
            paid_orders=5,
            total_spent="900.00",
            last_paid_at=(T0 - timedelta(days=200)).isoformat(),
        ),
        order_event("O-RET", at=T0, customer_id="C-ret"),
    )
    for order_id in ("O-NEW", "O-MEM", "O-VIP", "O-DOR", "O-RET"):
        await r.decided(order_id, 3)

    await r.advance(timedelta(minutes=15))
    first = {s["order_id"]: s for s in await r.sends(6) if s["kind"] == "unpaid_reminder"}
    assert {o: s["template"] for o, s in first.items()} == {
        "O-NEW": "unpaid_reminder.new.1",
        "O-MEM": "unpaid_reminder.member.1",
        "O-VIP": "unpaid_reminder.vip.1",
        "O-DOR": "unpaid_reminder.dormant.1",
        "O-RET": "unpaid_reminder.returning.1",
    }
    assert first["O-NEW"]["meta"] == {"tier": 1, "segment": "new"}
    assert first["O-NEW"]["variables"]["low_stock_items"] == [
        {"title": "羊毛混纺大衣", "stock_left": 2}
    ]
    assert first["O-NEW"]["variables"]["hold_minutes"] == 60
    assert first["O-MEM"]["variables"]["points"] == 599
    assert first["O-RET"]["variables"]["points"] == 0
    assert first["O-RET"]["idempotency_key"] == "unpaid_reminder:O-RET:1"
    assert first["O-RET"]["message_class"] == "marketing"

    await r.advance(timedelta(hours=3) - timedelta(minutes=15))
    sends = [s for s in await r.sends(11) if s["kind"] == "unpaid_reminder"]
    second = {s["order_id"]: s for s in sends if s["meta"]["tier"] == 2}
    assert second["O-VIP"]["template"] == "unpaid_reminder.vip.2"
    assert second["O-VIP"]["variables"]["coupon"] == {
        "code": "VIP30",
        "amount": "30.00",
        "min_spend": "299.00",
    }
    assert second["O-NEW"]["variables"]["coupon"] is None

    await r.advance(timedelta(hours=19))
    sends = [s for s in await r.sends(16) if s["kind"] == "unpaid_reminder"]
    last = {s["order_id"]: s for s in sends if s["meta"]["tier"] == 3}
    assert {s["template"] for s in last.values()} == {
        f"unpaid_reminder.{segment}.last"
        for segment in ("new", "member", "vip", "dormant", "returning")
    }
    assert all(s["variables"]["last_tier"] for s in last.values())
    assert len(sends) == 15  # five orders, three tiers each, nothing twice

    # The segment is recorded with every decision, and visible in the metrics by reason.
    segments = await r.db.fetch(
        "SELECT DISTINCT order_id, segment FROM reminder.reminder_decisions "
        "WHERE decision = 'sent' AND tier IS NOT NULL ORDER BY order_id"
    )
    assert {(row["order_id"], row["segment"]) for row in segments} == {
        ("O-DOR", "dormant"),
        ("O-MEM", "member"),
        ("O-NEW", "new"),
        ("O-RET", "returning"),
        ("O-VIP", "vip"),
    }
    await r.metric_reaches(
        'followup_reminder_decisions_total{decision="sent",reason="tier_due",segment="vip",tier="2"}',
        1,
    )


async def test_quiet_hours_defer_to_the_morning_or_skip_before_the_deadline(
    reminder: ReminderUnderTest,
) -> None:
    r = reminder
    evening = datetime(2026, 11, 22, 21, 30, tzinfo=SHANGHAI)
    morning = datetime(2026, 11, 23, 8, 0, tzinfo=SHANGHAI)
    r.clock.set(evening)
    await r.orders(
        order_event("O-EVE", at=evening, customer_id="C-1"),
        # Closes at 08:10: a night tier cannot wait for 08:00 with the 30 min margin.
        order_event(
            "O-SHORT", at=evening, deadline=morning + timedelta(minutes=10), customer_id="C-2"
        ),
    )
    assert await r.decided("O-EVE", 3) == [
        (1, "scheduled", "tier_planned"),  # 21:45
        (2, "deferred", "quiet_hours"),  # 00:30 -> 08:00
        (3, "scheduled", "tier_planned"),  # 19:30 the next day
    ]
    assert await r.decided("O-SHORT", 3) == [
        (1, "scheduled", "tier_planned"),
        (2, "skipped", "quiet_hours_until_deadline"),
        (3, "skipped", "quiet_hours_until_deadline"),
    ]
    assert await r.timers("O-EVE") == [("O-EVE:1", evening + timedelta(minutes=15))]

    # The timers fire late, at 23:00 (say the service was down): checked again at firing.
    # Waiting for the morning would bring tier 1 level with tier 2, which says more.
    await r.advance(timedelta(hours=1, minutes=30))
    assert (await r.decisions("O-EVE"))[3:] == [(1, "skipped", "superseded_by_tier_2")]
    assert (await r.decisions("O-SHORT"))[3:] == [(1, "skipped", "quiet_hours_until_deadline")]
    assert await r.timers("O-EVE") == [("O-EVE:2", morning)]
    assert await r.timers("O-SHORT") == []

    # 08:00: tier 2, then tier 3 waits for the evening.
    await r.advance(morning - r.clock.now())
    sends = await r.sends(1)
    assert [(s["order_id"], s["meta"]["tier"]) for s in sends] == [("O-EVE", 2)]
    assert (await r.decisions("O-EVE"))[4:] == [(2, "sent", "tier_due")]
    assert await r.timers("O-EVE") == [("O-EVE:3", evening + timedelta(hours=22))]
    await r.metric_reaches(
        'followup_reminder_decisions_total{decision="deferred",reason="quiet_hours"', 1
    )


async def test_a_late_event_skips_overdue_tiers_instead_of_sending_a_burst(
    reminder: ReminderUnderTest,
) -> None:
    r = reminder
    # Published four hours after it happened (a consumer backlog or a replay).
    await r.orders(
        order_event("O-LATE", at=T0 - timedelta(hours=4), deadline=T0 + timedelta(hours=12))
    )
    assert await r.decided("O-LATE", 3) == [
        (1, "skipped", "overdue_on_arrival"),
        (2, "skipped", "overdue_on_arrival"),
        (3, "scheduled", "tier_planned"),
    ]
    await r.advance(timedelta(minutes=1))
    await r.metric_reaches(
        'followup_reminder_decisions_total{decision="skipped",reason="overdue_on_arrival"', 2
    )
    assert await r.timers("O-LATE") == [("O-LATE:3", T0 + timedelta(hours=10))]

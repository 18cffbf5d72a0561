"""Per customer, not per order: one message lists every open order, a minimum gap across
orders; reminders stop on payment, cancellation or closing in whatever order events come."""

from datetime import timedelta

import pytest

from tests.integration.reminder.conftest import (
    T0,
    ReminderUnderTest,
    order_event,
    paid_event,
    settled_event,
)

pytestmark = pytest.mark.integration


async def test_one_message_lists_all_open_orders_and_the_gap_holds_across_orders(
    reminder: ReminderUnderTest,
) -> None:
    r = reminder
    await r.orders(order_event("O-A", at=T0), order_event("O-B", at=T0 + timedelta(minutes=5)))
    await r.orders(order_event("O-X", at=T0, customer_id="C-other"))
    await r.decided("O-B", 3)

    # 10:15, tier 1 of A: one message for A and B; B's tier 1 (10:20) is merged into it.
    await r.advance(timedelta(minutes=15))
    sends = await r.sends(2)
    mine = [s for s in sends if s["customer_id"] == "C-1"]
    assert len(mine) == 1
    assert mine[0]["template"] == "unpaid_reminder.several"
    assert mine[0]["meta"] == {"tier": 1, "segment": "new", "orders": 2}
    assert [o["order_id"] for o in mine[0]["variables"]["orders"]] == ["O-A", "O-B"]
    assert (1, "merged", "into_message") in await r.decisions("O-B")
    await r.advance(timedelta(minutes=5))
    assert [t for t, _ in await r.timers("O-B")] == ["O-B:2"]

    # 10:30, a third order; its tier 1 (10:45) comes within two hours of the last message.
    await r.orders(order_event("O-C", at=T0 + timedelta(minutes=30)))
    await r.decided("O-C", 3)
    await r.advance(timedelta(minutes=25))
    assert (1, "deferred", "customer_gap") in await r.decisions("O-C")
    assert ("O-C:1", T0 + timedelta(hours=2, minutes=15)) in await r.timers("O-C")

    # 12:15, the gap is over: one message for all three; A's and B's tier 2 (13:00, 13:05)
    # are within the next gap, so they are merged instead of following an hour later.
    await r.advance(timedelta(hours=1, minutes=30))
    sends = [s for s in await r.sends(3) if s["customer_id"] == "C-1"]
    assert len(sends) == 2
    assert [o["order_id"] for o in sends[1]["variables"]["orders"]] == ["O-C", "O-A", "O-B"]
    assert sends[1]["idempotency_key"] == "unpaid_reminder:O-C:1"
    assert (2, "merged", "into_message") in await r.decisions("O-A")
    assert (2, "merged", "into_message") in await r.decisions("O-B")

    # 13:30, C's own tier 2: the customer heard from us 75 minutes ago, so it waits.
    await r.advance(timedelta(hours=1, minutes=15))
    assert (2, "deferred", "customer_gap") in await r.decisions("O-C")
    assert len([s for s in await r.sends(3) if s["customer_id"] == "C-1"]) == 2

    # Every message to this customer kept the gap; each (order, tier) at most one command.
    times = await r.db.fetch(
        "SELECT decided_at FROM reminder.reminder_messages WHERE customer_id = 'C-1' "
        "ORDER BY decided_at"
    )
    assert times[1]["decided_at"] - times[0]["decided_at"] >= timedelta(hours=2)
    await r.metric_reaches('followup_reminder_messages_total{orders="3+"}', 1)
    await r.metric_reaches('followup_reminder_decisions_total{decision="merged"', 3)


async def test_reminders_stop_on_payment_cancellation_or_closing_in_either_order(
    reminder: ReminderUnderTest,
) -> None:
    r = reminder
    at = T0
    # Settled before the order event arrives: remembered, nothing planned.
    await r.payments(paid_event("O-P0", at=at))
    await r.orders(
        settled_event("cancelled", "O-C0", at=at), settled_event("closed", "O-X0", at=at)
    )
    for order_id in ("O-P0", "O-C0", "O-X0"):
        await r.decided(order_id, 1)
    await r.orders(
        order_event("O-P0", at=at, customer_id="C-p0"),
        order_event("O-C0", at=at, customer_id="C-c0"),
        order_event("O-X0", at=at, customer_id="C-x0"),
    )
    # Settled after the order event, before the first tier.
    await r.orders(
        order_event("O-P1", at=at, customer_id="C-p1"),
        order_event("O-C1", at=at, customer_id="C-c1"),
        order_event("O-X1", at=at, customer_id="C-x1"),
    )
    await r.decided("O-X1", 3)
    await r.payments(paid_event("O-P1", at=at + timedelta(minutes=5)))
    await r.orders(
        settled_event("cancelled", "O-C1", at=at + timedelta(minutes=5)),
        settled_event("closed", "O-X1", at=at + timedelta(minutes=5)),
    )
    for order_id, status in (("O-P0", "paid"), ("O-C0", "cancelled"), ("O-X0", "closed")):
        assert (await r.decided(order_id, 2))[:2] == [
            (None, "cancelled", f"order_{status}"),
            (None, "skipped", f"order_{status}"),
        ]
    for order_id, status in (("O-P1", "paid"), ("O-C1", "cancelled"), ("O-X1", "closed")):
        decisions = await r.decided(order_id, 4)
        assert decisions[3] == (None, "cancelled", f"order_{status}")
        assert await r.timers(order_id) == []

    # A control order proves the timers ran past the due time of the stopped ones.
    await r.orders(order_event("O-CTL", at=at, customer_id="C-ctl"))
    await r.decided("O-CTL", 3)
    await r.advance(timedelta(minutes=15))
    sends = await r.sends(3)
    assert sorted(s["order_id"] for s in sends if s["kind"] == "unpaid_reminder") == ["O-CTL"]
    # The two paid orders got their order confirmation instead.
    assert sorted(s["order_id"] for s in sends if s["kind"] == "order_confirmation") == [
        "O-P0",
        "O-P1",
    ]


async def test_a_reminder_decided_before_the_payment_is_cancelled_in_the_notifier(
    reminder: ReminderUnderTest,
) -> None:
    r = reminder
    await r.orders(
        order_event("O-1", at=T0, customer_id="C-1"),
        order_event("O-2", at=T0, customer_id="C-2"),
        order_event("O-3", at=T0 + timedelta(minutes=1), customer_id="C-2"),
    )
    await r.decided("O-3", 3)
    await r.advance(timedelta(minutes=15))
    assert len(await r.sends(2)) == 2

    # Paid while the reminder may still wait in the notifier's queue: tell it to drop it.
    await r.payments(paid_event("O-1", at=T0 + timedelta(minutes=16)))
    # One of two orders in C-2's message paid: the message still matters for the other.
    await r.payments(paid_event("O-2", at=T0 + timedelta(minutes=16)))
    commands = await r.commands(5)
    cancels = [c["data"] for c in commands if c["type"] == "followup.notification.cancel"]
    assert cancels == [
        {
            "idempotency_keys": ["unpaid_reminder:O-1:1"],
            "customer_id": "C-1",
            "kinds": [],
            "reason": "order_settled",
        }
    ]
    # Both paid: now C-2's message is pointless too.
    await r.payments(paid_event("O-3", at=T0 + timedelta(minutes=17)))
    commands = await r.commands(7)
    cancels = [c["data"] for c in commands if c["type"] == "followup.notification.cancel"]
    assert cancels[1]["idempotency_keys"] == ["unpaid_reminder:O-2:1"]
    assert cancels[1]["reason"] == "orders_settled"

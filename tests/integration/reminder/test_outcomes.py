"""Experiments with a holdout, attribution of recovered orders, and order confirmations."""

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from followup import cli
from followup.settings import load_policy
from services.reminder.policy import HOLDOUT, assign_variant
from services.reminder.settings import ReminderPolicy
from tests.integration.reminder.conftest import (
    T0,
    ReminderUnderTest,
    order_event,
    paid_event,
)

pytestmark = pytest.mark.integration

EXPERIMENT = """
[reminder.experiment]
enabled = true
name = "tiers-test"
holdout = 0.3
[[reminder.experiment.variants]]
name = "control"
[[reminder.experiment.variants]]
name = "early"
[[reminder.experiment.variants.tiers]]
after_created = "5m"
[[reminder.experiment.variants.tiers]]
before_deadline = "2h"
"""


@pytest.fixture
def policy_text() -> str:
    return EXPERIMENT


def customer_in(group: str, tmp_path: Path) -> str:
    """The first customer id the experiment puts in ``group`` (assignment is deterministic)."""
    path = tmp_path / "followup.toml"
    experiment = load_policy(path, "reminder", ReminderPolicy).experiment
    return next(f"C-{n}" for n in range(1000) if assign_variant(f"C-{n}", experiment) == group)


async def test_variants_holdout_and_attribution(
    reminder: ReminderUnderTest, tmp_path: Path, database: str
) -> None:
    r = reminder
    held, early, control = (customer_in(g, tmp_path) for g in (HOLDOUT, "early", "control"))
    await r.orders(
        order_event("O-H", at=T0, customer_id=held),
        order_event("O-E", at=T0, customer_id=early),
        order_event("O-K", at=T0, customer_id=control),
    )
    assert await r.decided("O-H", 1) == [(None, "skipped", "holdout")]
    assert await r.timers("O-H") == []
    await r.decided("O-K", 3)
    await r.decided("O-E", 2)
    assert [t for t, _ in await r.timers("O-E")] == ["O-E:1"]
    assert [t for t, _ in await r.timers("O-K")] == ["O-K:1"]
    assert await r.decided("O-E", 2) == [
        (1, "scheduled", "tier_planned"),  # the variant's two tiers
        (2, "scheduled", "tier_planned"),
    ]

    await r.advance(timedelta(minutes=5))
    await r.advance(timedelta(minutes=10))
    sends = await r.sends(2)
    assert {(s["order_id"], s["meta"].get("variant")) for s in sends} == {
        ("O-E", "early"),
        ("O-K", "control"),
    }

    # Paid 15 minutes after the early group's reminder: a recovered order. The holdout pays
    # on its own: a conversion without a reminder, the baseline for the lift.
    await r.payments(
        paid_event("O-E", at=T0 + timedelta(minutes=20)),
        paid_event("O-H", at=T0 + timedelta(minutes=30), amount="599.00"),
    )
    await r.wait_for(
        lambda: r.decisions("O-E"),
        lambda d: (1, "recovered", "paid_after_reminder") in d,
        "the recovered order",
    )
    await r.wait_for(lambda: r.decisions("O-H"), lambda d: len(d) >= 2, "holdout payment")
    series = {
        'followup_reminder_recovered_orders_total{segment="new",tier="1",variant="early"}': 1,
        'followup_reminder_recovered_revenue_total{currency="CNY",segment="new",tier="1",variant="early"}': 599,
        'followup_reminder_time_to_payment_seconds_count{segment="new",tier="1"}': 1,
        'followup_reminder_time_to_payment_seconds_sum{segment="new",tier="1"}': 900,
        'followup_reminder_time_to_payment_seconds_bucket{le="900.0",segment="new",tier="1"}': 1,
        'followup_reminder_time_to_payment_seconds_bucket{le="300.0",segment="new",tier="1"}': 0,
        'followup_reminder_orders_paid_total{reminded="no",segment="new",variant="holdout"}': 1,
        'followup_reminder_orders_paid_total{reminded="yes",segment="new",variant="early"}': 1,
        'followup_reminder_orders_total{segment="new",variant="holdout"}': 1,
        'followup_reminder_orders_total{segment="new",variant="control"}': 1,
        'followup_reminder_recovered_orders_total{segment="new",tier="1",variant="holdout"}': 0,
    }
    text = await r.metrics()
    assert "O-E" not in text  # no ids in labels
    for name, value in series.items():
        await r.metric_reaches(name, value)

    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli.app, ["history", "--order", "O-E"], env={"DATABASE_URL": database}
    )
    assert result.exit_code == 0, result.output
    assert "reminder tier 1 sent  (tier_due, due " in result.output
    assert "segment new, group early" in result.output
    assert "order paid after a reminder (tier 1)" in result.output


async def test_order_confirmation_once_per_order_masked_with_the_dispatch_window(
    reminder: ReminderUnderTest,
) -> None:
    r = reminder
    await r.orders(
        order_event("O-1", at=T0, phone="+8613812345678", email="wang.fang@example.com"),
    )
    await r.decided("O-1", 1)
    # Paid twice over (a duplicate under a new event id): one confirmation.
    await r.payments(
        paid_event("O-1", at=T0 + timedelta(minutes=20), event_id="pay-1"),
        paid_event("O-1", at=T0 + timedelta(minutes=20), event_id="pay-1"),
        paid_event("O-1", at=T0 + timedelta(minutes=21), event_id="pay-1-again"),
    )
    # Paid before the order event arrives: confirmed when the order is known.
    await r.payments(paid_event("O-2", at=T0 + timedelta(minutes=2)))
    await r.decided("O-2", 1)
    assert not [s for s in await r.sends(1) if s["order_id"] == "O-2"]
    await r.orders(order_event("O-2", at=T0, customer_id="C-2"))
    # A payment replayed two days later gets no confirmation, with a reason.
    await r.orders(order_event("O-3", at=T0 - timedelta(days=2), customer_id="C-3"))
    await r.payments(paid_event("O-3", at=T0 - timedelta(days=2)))
    await r.wait_for(
        lambda: r.decisions("O-3"),
        lambda d: (None, "skipped", "confirmation_too_late") in d,
        "late confirmation skipped",
    )

    sends = await r.sends(2)
    confirmations = {s["order_id"]: s for s in sends if s["kind"] == "order_confirmation"}
    assert sorted(confirmations) == ["O-1", "O-2"]
    confirmation = confirmations["O-1"]
    assert confirmation["idempotency_key"] == "order_confirmation:O-1"
    assert confirmation["template"] == "order_confirmation"
    assert confirmation["message_class"] == "transactional"
    variables = confirmation["variables"]
    assert variables["items"] == [
        {
            "title": "羊毛混纺大衣",
            "quantity": 1,
            "options": {"size": "M", "color": "藏青"},
            "unit_price": "599.00",
        }
    ]
    assert variables["contact"] == {"phone": "138****5678", "email": "w***@example.com"}
    assert variables["address"]["street"] == "世纪大道****"
    assert variables["address"]["phone"] == "138****5678"
    assert "13812345678" not in str(confirmation)
    # Paid on Sunday: dispatch between Monday and Wednesday (1 to 3 working days).
    assert (variables["dispatch_from"], variables["dispatch_by"]) == ("2026-11-23", "2026-11-25")
    await r.metric_reaches('followup_reminder_confirmations_total{outcome="sent"}', 2)
    await r.metric_reaches('followup_reminder_confirmations_total{outcome="skipped"}', 1)

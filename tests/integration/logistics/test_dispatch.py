"""Paid but not dispatched: working days on the mainland China calendar (make-up workdays
included), cancellations, parcels seen before the payment, clock-time promises and red."""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from followup import cli
from tests.harness import order_created, payment_succeeded
from tests.integration.logistics.conftest import SHANGHAI, T0, Logistics
from tests.integration.logistics.events import cancelled, dispatched, scanned

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
FRIDAY = datetime(2026, 10, 9, 10, 0, tzinfo=SHANGHAI)  # the day before a make-up Saturday
MONDAY = datetime(2026, 10, 12, 10, 0, tzinfo=SHANGHAI)


async def test_dispatch_late_counts_working_days_with_the_make_up_saturday(
    logistics_with: Any, database: str
) -> None:
    s: Logistics = await logistics_with(at=FRIDAY - H)
    for order_id in ("O-D1", "O-D2", "O-D3", "O-D4"):
        created = order_created(order_id, at=FRIDAY - 2 * H, deadline=FRIDAY + 22 * H)
        await s.publish("shop.orders", created)
    # O-D3's parcel is scanned before its payment event arrives.
    await s.ship(scanned("O-D3", "S-D3", "in_transit", at=FRIDAY - H))
    await s.applied(5)
    await s.publish(
        "shop.payments",
        *(payment_succeeded(o, at=FRIDAY) for o in ("O-D1", "O-D2", "O-D3", "O-D4")),
    )
    await s.applied(9)
    # Saturday 10 October is a workday (调休), so two working days end on Monday, not Tuesday.
    assert await s.timer("dispatch_check", "O-D1") == MONDAY
    assert await s.timer("dispatch_check", "O-D3") is None
    await s.publish("shop.orders", cancelled("O-D2", at=FRIDAY + 3 * H))
    await s.ship(dispatched("O-D4", "S-D4", at=FRIDAY + 5 * H))
    # Delivered, so these parcels do not stall over the weekend while we watch O-D1.
    await s.ship(
        *(
            scanned(o, sid, "delivered", at=FRIDAY + 7 * H)
            for o, sid in (("O-D3", "S-D3"), ("O-D4", "S-D4"))
        )
    )
    await s.applied(13)
    assert await s.timer("dispatch_check", "O-D2") is None
    assert await s.timer("dispatch_check", "O-D4") is None

    await s.advance(MONDAY - timedelta(minutes=1) - s.clock.now())
    await s.sent(0)
    await s.advance(timedelta(minutes=1))
    (notice,) = await s.sent(1)
    assert notice["kind"] == "dispatch_delay"
    assert notice["template"] == "dispatch_delay"
    assert notice["idempotency_key"] == "dispatch_delay:O-D1:1:notice"
    assert notice["order_id"] == "O-D1"
    assert notice["priority"] == "high"
    evidence = notice["meta"]["evidence"]
    assert datetime.fromisoformat(evidence["paid_at"]) == FRIDAY
    assert datetime.fromisoformat(evidence["dispatch_due"]) == MONDAY
    assert evidence["promise"] == "2 working days (cn)"
    variables = notice["variables"]
    assert (variables["item_title"], variables["item_count"]) == ("羊毛混纺大衣", 1)
    assert variables["warehouse_asked"] is True
    assert datetime.fromisoformat(variables["next_update_at"]) == MONDAY + 6 * H

    # It finally leaves: the closing message names the carrier and tracking number.
    await s.ship(dispatched("O-D1", "S-D1", at=MONDAY + 2 * H, eta=MONDAY.date() + timedelta(3)))
    closing = (await s.sent(2))[1]
    assert closing["template"] == "shipment_update.dispatched"
    assert closing["idempotency_key"] == "shipment_update:O-D1:1:closing"
    assert closing["variables"]["carrier"] == "SF Express"
    assert closing["variables"]["tracking_number"].startswith("SF")
    assert closing["variables"]["expected_delivery"] == "2026-10-15"
    assert closing["meta"]["resolution"] == "dispatched"
    assert await s.timer("dispatch_check", "O-D1") is None

    # Staff see both decisions, with the rule and its evidence, in the order's history.
    result = await asyncio.to_thread(
        CliRunner().invoke, cli.app, ["history", "--order", "O-D1"], env={"DATABASE_URL": database}
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "logistics" in line]
    assert len(lines) == 2
    assert "dispatch_delay notice" in lines[0]
    assert "dispatch_late, yellow; dispatch_due=" in lines[0]
    assert "shipment_update closing" in lines[1]
    by_customer = await asyncio.to_thread(
        CliRunner().invoke,
        cli.app,
        ["history", "--customer", "C-1"],
        env={"DATABASE_URL": database},
    )
    assert "O-D1" in by_customer.output


async def test_a_clock_time_promise_follows_up_and_turns_red(logistics_with: Any) -> None:
    s: Logistics = await logistics_with(
        '[logistics.dispatch]\nwithin = "48h"\nred_within = "60h"\n'
        '[logistics]\nfirst_followup_after = "6h"\nfollowup_every = "12h"\n'
    )
    await s.publish("shop.payments", payment_succeeded("O-R", at=T0))
    await s.applied(1)
    await s.advance(48 * H)
    await s.advance(6 * H)
    await s.advance(6 * H)  # 60 h: red, told at once and escalated
    messages = await s.sent(4)
    assert [m["idempotency_key"] for m in messages] == [
        "dispatch_delay:O-R:1:notice",
        "dispatch_delay:O-R:1:followup:1",
        "dispatch_delay:O-R:1:update:dispatch_late:red",
        "ops_escalation:O-R:1:dispatch_late",
    ]
    assert messages[2]["priority"] == "critical"
    assert messages[3]["variables"]["rule"] == "dispatch_late"
    assert messages[3]["meta"]["evidence"]["promise"] == "48h"
    await s.advance(12 * H)
    assert (await s.sent(5))[4]["idempotency_key"] == "dispatch_delay:O-R:1:followup:2"

"""Stalled and late shipments through the real broker and PostgreSQL, on a manual clock:
one notice per episode, follow-ups, red escalation and the closing message."""

from datetime import date, datetime, timedelta

import pytest

from tests.integration.logistics.conftest import SHANGHAI, T0, Logistics
from tests.integration.logistics.events import dispatched, scanned

pytestmark = pytest.mark.integration

H = timedelta(hours=1)


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_stalled_parcel_gets_one_notice_daily_follow_ups_red_escalation_and_a_closing(
    logistics: Logistics,
) -> None:
    s = logistics
    await s.ship(
        dispatched("O-1", "S-1", at=T0, service_level="express"),
        scanned("O-1", "S-1", "in_transit", at=T0 + 2 * H),
    )
    await s.applied(2)
    assert await s.timer("shipment_check", "S-1") is not None

    # Counted from the last scan, not from dispatch: nothing at 24 h, the notice at 26 h.
    await s.advance(25 * H + 59 * timedelta(minutes=1))
    assert s.of("S-1") == []
    await s.advance(timedelta(minutes=1))  # T0 + 26 h: 24 h without a scan
    (notice,) = await s.sent(1)
    assert notice["kind"] == "shipment_delay"
    assert notice["template"] == "shipment_delay.stalled"
    assert notice["idempotency_key"] == "shipment_delay:S-1:1:notice"
    assert notice["order_id"] == "O-1"
    assert notice.get("customer_id") is None
    assert notice.get("locale") is None
    assert notice.get("timezone") is None
    assert notice["priority"] == "high"
    assert notice["message_class"] == "transactional"
    assert notice["meta"]["rule"] == "stalled"
    assert notice["meta"]["severity"] == "yellow"
    assert notice["meta"]["stage"] == "notice"
    evidence = notice["meta"]["evidence"]
    assert moment(evidence["last_scan_at"]) == T0 + 2 * H
    assert evidence["hours_without_scan"] == 24.0
    assert evidence["threshold_hours"] == 24.0
    assert evidence["service_level"] == "express"
    variables = notice["variables"]
    assert variables["hours_without_scan"] == 24
    assert variables["location"] == "杭州转运中心"
    assert variables["carrier"] == "SF Express"
    assert moment(variables["next_update_at"]) == T0 + 32 * H
    assert variables["followup"] == 0

    # A duplicate of the last scan changes nothing and sends nothing.
    await s.ship(scanned("O-1", "S-1", "in_transit", at=T0 + 2 * H))
    await s.applied(3)

    await s.advance(6 * H)  # the promised same-day follow-up
    await s.advance(24 * H)  # and the daily one
    messages = await s.sent(3)
    assert [m["idempotency_key"] for m in messages[1:]] == [
        "shipment_delay:S-1:1:followup:1",
        "shipment_delay:S-1:1:followup:2",
    ]
    assert [m["variables"]["followup"] for m in messages[1:]] == [1, 2]
    assert moment(messages[2]["variables"]["next_update_at"]) == T0 + 80 * H

    await s.advance(18 * H)  # T0 + 74 h: 72 h without a scan is red
    red, escalation = (await s.sent(5))[3:]
    assert red["idempotency_key"] == "shipment_delay:S-1:1:update:stalled:red"
    assert (red["meta"]["severity"], red["priority"]) == ("red", "critical")
    assert escalation["kind"] == "ops_escalation"
    assert escalation["template"] == "ops_escalation.logistics"
    assert escalation["idempotency_key"] == "ops_escalation:S-1:1:stalled"
    assert escalation.get("customer_id") is None
    assert escalation["order_id"] == "O-1"
    assert escalation["variables"]["rule"] == "stalled"
    assert escalation["meta"]["evidence"]["hours_without_scan"] == 72.0
    assert (
        await s.db.fetchval("SELECT count(*) FROM logistics.notices WHERE stage = 'escalation'")
        == 1
    )

    # It moves again: one short "back on track", and the episode is closed.
    await s.ship(
        scanned(
            "O-1",
            "S-1",
            "in_transit",
            at=T0 + 75 * H,
            location="上海转运中心",
            eta=date(2026, 11, 28),
        )
    )
    closing = (await s.sent(6))[5]
    assert closing["kind"] == "shipment_update"
    assert closing["template"] == "shipment_update.back_on_track"
    assert closing["idempotency_key"] == "shipment_update:S-1:1:closing"
    assert closing["variables"]["after_delay"] is True
    assert closing["variables"]["expected_delivery"] == "2026-11-28"
    assert closing["meta"]["resolution"] == "back_on_track"
    assert closing["priority"] == "normal"

    # Stalling again, 24 h after that scan, is a new episode with its own notice.
    await s.advance(T0 + 99 * H - timedelta(minutes=1) - s.clock.now())
    await s.sent(6)
    await s.advance(timedelta(minutes=1))
    reopened = (await s.sent(7))[6]
    assert reopened["idempotency_key"] == "shipment_delay:S-1:2:notice"


async def test_late_uses_the_revised_estimate_and_delivery_closes_with_thanks(
    logistics: Logistics,
) -> None:
    s = logistics
    await s.ship(
        dispatched("O-2", "S-2", at=T0, service_level="standard", eta=date(2026, 11, 25)),
        scanned("O-2", "S-2", "in_transit", at=T0 + 20 * H),
        # The carrier pushes the estimate to the 27th.
        scanned("O-2", "S-2", "in_transit", at=T0 + 40 * H, eta=date(2026, 11, 27)),
    )
    await s.applied(3)
    end_of_25th = datetime(2026, 11, 26, 0, 0, tzinfo=SHANGHAI)
    # Past the promised day plus grace, but not past the revised estimate: not late yet.
    await s.ship(scanned("O-2", "S-2", "in_transit", at=end_of_25th + 10 * H))
    await s.applied(4)
    await s.advance(end_of_25th + 13 * H - s.clock.now())
    assert s.of("S-2") == []
    # Keep it moving so only lateness can fire, then pass the revised day plus grace.
    await s.ship(scanned("O-2", "S-2", "in_transit", at=end_of_25th + 30 * H, location="上海"))
    await s.applied(5)
    late_at = datetime(2026, 11, 28, 12, 0, tzinfo=SHANGHAI)  # the 27th, plus 12 h
    await s.advance(late_at - timedelta(minutes=1) - s.clock.now())
    await s.sent(0)
    await s.advance(timedelta(minutes=1))
    (late,) = await s.sent(1)
    assert late["template"] == "shipment_delay.late"
    assert late["meta"]["rule"] == "late"
    assert late["meta"]["evidence"]["revised_delivery"] == "2026-11-27"
    assert late["meta"]["evidence"]["promised_delivery"] == "2026-11-25"
    assert late["meta"]["evidence"]["estimate_used"] == "revised"
    assert late["variables"]["promised_delivery"] == "2026-11-25"

    await s.ship(scanned("O-2", "S-2", "delivered", at=late_at + H, location="上海浦东"))
    delivered = (await s.sent(2))[1]
    assert delivered["template"] == "shipment_update.delivered"
    assert delivered["idempotency_key"] == "shipment_update:S-2:1:closing"
    assert delivered["meta"]["resolution"] == "delivered"
    assert await s.timer("shipment_check", "S-2") is None
    # Delivered is final: an old scan arriving now changes nothing.
    await s.ship(scanned("O-2", "S-2", "in_transit", at=late_at - 5 * H))
    await s.applied(7)
    row = await s.db.fetchrow(
        "SELECT last_status, delivered_at FROM logistics.shipments WHERE shipment_id = 'S-2'"
    )
    assert row is not None
    assert row["last_status"] == "delivered"
    await s.advance(48 * H)
    await s.sent(2)

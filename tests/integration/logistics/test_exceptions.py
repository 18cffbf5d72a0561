"""Carrier exceptions act at once, in their colour; ready-for-pickup is a helpful notice; a
cancelled order's episodes close without a message and its pending notices are withdrawn."""

from datetime import timedelta
from typing import Any

import pytest

from tests.harness import cloud_event
from tests.integration.logistics.conftest import T0, Logistics
from tests.integration.logistics.events import cancelled, dispatched, scanned

pytestmark = pytest.mark.integration

H = timedelta(hours=1)


async def test_each_carrier_exception_is_told_at_once_in_its_colour(logistics: Logistics) -> None:
    s = logistics
    statuses = {
        "S-F": "delivery_failed",
        "S-C": "customs_hold",
        "S-E": "exception",
        "S-L": "lost",
        "S-R": "returned_to_sender",
        "S-P": "available_for_pickup",
    }
    for shipment_id, status in statuses.items():
        order_id = "O" + shipment_id[1:]
        await s.ship(
            dispatched(order_id, shipment_id, at=T0),
            scanned(order_id, shipment_id, status, at=T0 + 3 * H, event_id=f"{shipment_id}-1"),
            # The same scan again under its own id, and republished under a new id.
            scanned(order_id, shipment_id, status, at=T0 + 3 * H, event_id=f"{shipment_id}-1"),
            scanned(order_id, shipment_id, status, at=T0 + 3 * H, event_id=f"{shipment_id}-2"),
        )
    await s.sent(6 + 2, "one message per shipment, plus two escalations")

    def first(shipment_id: str) -> dict[str, object]:
        (message,) = [m for m in s.of(shipment_id) if m["kind"] != "ops_escalation"]
        return message

    expected = {
        "S-F": ("shipment_exception", "shipment_exception.delivery_failed", "yellow", "high"),
        "S-C": ("shipment_exception", "shipment_exception.customs_hold", "yellow", "high"),
        "S-E": ("shipment_exception", "shipment_exception.exception", "yellow", "high"),
        "S-L": ("shipment_exception", "shipment_exception.lost", "red", "critical"),
        "S-R": ("shipment_exception", "shipment_exception.returned_to_sender", "red", "critical"),
        "S-P": ("shipment_update", "shipment_update.pickup", "green", "high"),
    }
    for shipment_id, (kind, template, severity, priority) in expected.items():
        message = first(shipment_id)
        meta = message["meta"]
        assert isinstance(meta, dict)
        assert (message["kind"], message["template"], meta["severity"], message["priority"]) == (
            kind,
            template,
            severity,
            priority,
        ), shipment_id
    assert first("S-F")["variables"]["failed_attempts"] == 1  # type: ignore[index]
    assert first("S-P")["variables"]["after_delay"] is False  # type: ignore[index]
    escalated = sorted(
        m["idempotency_key"] for m in await s.sent(8) if m["kind"] == "ops_escalation"
    )
    assert escalated == ["ops_escalation:S-L:1:lost", "ops_escalation:S-R:1:returned_to_sender"]
    repeated = await s.db.fetchval("SELECT count(*) FROM logistics.inbox")
    assert repeated == 6 * 3  # every distinct event id seen once, duplicates recognised


async def test_a_second_failed_attempt_turns_red_and_pickup_closes_the_episode(
    logistics: Logistics,
) -> None:
    s = logistics
    await s.ship(
        dispatched("O-1", "S-1", at=T0),
        scanned("O-1", "S-1", "delivery_failed", at=T0 + 20 * H, location="上海浦东"),
    )
    (notice,) = await s.sent(1)
    assert notice["idempotency_key"] == "shipment_exception:S-1:1:notice"
    # Out for delivery again: still the same episode (a failed attempt is not resolved by
    # another try), then a second failure is red news, told at once and escalated.
    await s.ship(scanned("O-1", "S-1", "out_for_delivery", at=T0 + 21 * H))
    await s.applied(3)
    await s.ship(scanned("O-1", "S-1", "delivery_failed", at=T0 + 22 * H))
    messages = await s.sent(3)
    keys = [m["idempotency_key"] for m in messages]
    assert "shipment_exception:S-1:1:update:delivery_failed:red" in keys
    assert "ops_escalation:S-1:1:delivery_failed" in keys
    red = next(m for m in messages if m["idempotency_key"].endswith(":red"))
    assert red["variables"]["failed_attempts"] == 2
    assert red["meta"]["evidence"]["failed_attempts"] == 2
    # Left at a pickup point: the episode closes with the pickup notice, thanks included.
    await s.ship(scanned("O-1", "S-1", "available_for_pickup", at=T0 + 30 * H, location="驿站"))
    closing = (await s.sent(4))[3]
    assert closing["template"] == "shipment_update.pickup"
    assert closing["idempotency_key"] == "shipment_update:S-1:1:closing"
    assert closing["variables"]["after_delay"] is True
    # Waiting at the pickup point is not a stall: days pass, nothing more is sent.
    await s.advance(72 * H)
    await s.sent(4)


async def test_a_cancelled_order_closes_silently_and_withdraws_pending_notices(
    logistics: Logistics,
) -> None:
    s = logistics
    await s.ship(dispatched("O-7", "S-7", at=T0), scanned("O-7", "S-7", "exception", at=T0 + H))
    await s.sent(1)
    await s.publish("shop.orders", cancelled("O-7", at=T0 + 2 * H))
    await s.applied(3)  # topics are not ordered with each other: cancelled first, here
    await s.ship(scanned("O-7", "S-7", "returned_to_sender", at=T0 + 5 * H))
    await s.applied(4)
    await s.advance(72 * H)
    await s.sent(1)  # no follow-up, no red notice for a parcel returning after a cancellation
    cancels = [c["data"] for c in s.commands if c["type"] == "followup.notification.cancel"]
    assert cancels == [
        {
            "idempotency_keys": [],
            "order_id": "O-7",
            "kinds": ["dispatch_delay", "shipment_delay", "shipment_exception", "shipment_update"],
            "reason": "order_cancelled",
        }
    ]
    stages = await s.db.fetch(
        "SELECT stage FROM logistics.notices WHERE shipment_id = 'S-7' ORDER BY id"
    )
    assert [r["stage"] for r in stages] == ["notice", "closed_silently"]
    assert await s.timer("shipment_check", "S-7") is None
    unrelated = cloud_event(
        "shop.order.closed",
        {"order_id": "O-8", "closed_at": T0.isoformat(), "reason": "unpaid_timeout"},
        time=T0,
    )
    await s.publish("shop.orders", unrelated)
    await s.applied(5)
    assert len([c for c in s.commands if c["type"] == "followup.notification.cancel"]) == 1


async def test_on_time_progress_messages_are_optional_and_throttled(logistics_with: Any) -> None:
    s: Logistics = await logistics_with(
        '[logistics]\nprogress_updates = true\nprogress_min_interval = "12h"\n'
    )
    await s.ship(
        dispatched("O-P", "S-P", at=T0),
        scanned("O-P", "S-P", "in_transit", at=T0, location="杭州转运中心"),
    )
    (first,) = await s.sent(1)
    assert first["template"] == "shipment_update.progress"
    assert first["priority"] == "low"
    assert first["variables"]["location"] == "杭州转运中心"
    assert first["meta"]["severity"] == "green"
    await s.ship(scanned("O-P", "S-P", "in_transit", at=T0 + H, location="嘉兴"))
    await s.applied(3)
    await s.sent(1)  # within progress_min_interval: nothing
    await s.advance(13 * H)
    await s.ship(scanned("O-P", "S-P", "out_for_delivery", at=T0 + 13 * H, location="上海浦东"))
    second = (await s.sent(2))[1]
    assert second["variables"]["location"] == "上海浦东"
    assert second["idempotency_key"] != first["idempotency_key"]

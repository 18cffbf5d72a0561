"""Events out of order and twice give the outcome of events in order: scans before the
dispatch event, the same scan repeated (same id, new id), an old scan after delivery."""

from datetime import date, timedelta
from typing import Any

import pytest

from tests.integration.logistics.conftest import T0, Logistics
from tests.integration.logistics.events import dispatched, scanned

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
STATE = (
    "SELECT carrier, service_level, dispatched_at, promised_delivery, revised_delivery, "
    "last_scan_at, last_status, last_location, failed_attempts, delivered_at, episode "
    "FROM logistics.shipments WHERE shipment_id = $1"
)


def story(order_id: str, shipment_id: str) -> list[dict[str, Any]]:
    return [
        dispatched(order_id, shipment_id, at=T0, eta=date(2026, 11, 26), event_id=f"{order_id}-d"),
        scanned(order_id, shipment_id, "info_received", at=T0 + H, event_id=f"{order_id}-1"),
        scanned(
            order_id,
            shipment_id,
            "in_transit",
            at=T0 + 5 * H,
            location="杭州",
            eta=date(2026, 11, 27),
            event_id=f"{order_id}-2",
        ),
        scanned(
            order_id,
            shipment_id,
            "in_transit",
            at=T0 + 10 * H,
            location="上海",
            event_id=f"{order_id}-3",
        ),
    ]


async def state(s: Logistics, shipment_id: str) -> Any:
    row = await s.db.fetchrow(STATE, shipment_id)
    assert row is not None
    return row


def comparable(message: Any) -> Any:
    """A message with the shipment's own ids (and its tracking number) taken out."""
    if isinstance(message, dict):
        return {
            k: comparable(v)
            for k, v in message.items()
            if k not in {"source_event_id", "source_event_time", "tracking_number"}
        }
    if isinstance(message, str):
        for own in ("S-OUT", "O-OUT", "S-IN", "O-IN"):
            message = message.replace(own, "X")
    return message


async def test_scrambled_and_repeated_events_end_exactly_like_events_in_order(
    logistics_with: Any,
) -> None:
    s: Logistics = await logistics_with(at=T0 + 11 * H)
    in_order = story("O-IN", "S-IN")
    d, first, second, third = story("O-OUT", "S-OUT")
    repeated_under_a_new_id = {**second, "id": "O-OUT-2-again"}
    scrambled = [third, second, first, second, repeated_under_a_new_id, d, third]
    await s.ship(*in_order)
    await s.ship(*scrambled)
    await s.applied(len(in_order) + 5)  # 5 distinct ids among the scrambled 7
    state_in = dict(await state(s, "S-IN"))
    state_out = dict(await state(s, "S-OUT"))
    assert state_in == state_out
    assert state_in["last_location"] == "上海"
    assert state_in["revised_delivery"] == "2026-11-27"

    # The same stall notice for both, with the same evidence, at the same moment: 24 h
    # after the latest scan, not after the last one read.
    await s.advance(T0 + 34 * H - timedelta(minutes=1) - s.clock.now())
    await s.sent(0)
    await s.advance(timedelta(minutes=1))
    messages = await s.sent(2)
    assert comparable(s.of("S-IN")[0]) == comparable(s.of("S-OUT")[0])
    assert {m["idempotency_key"] for m in messages} == {
        "shipment_delay:S-IN:1:notice",
        "shipment_delay:S-OUT:1:notice",
    }

    # Delivered; for the scrambled one an old scan turns up afterwards, twice.
    delivered = T0 + 36 * H
    await s.ship(scanned("O-IN", "S-IN", "delivered", at=delivered, location="上海浦东"))
    old = scanned("O-OUT", "S-OUT", "in_transit", at=T0 + 20 * H, location="嘉兴")
    await s.ship(
        scanned("O-OUT", "S-OUT", "delivered", at=delivered, location="上海浦东"), old, old
    )
    await s.sent(4)
    assert comparable(s.of("S-IN")[1]) == comparable(s.of("S-OUT")[1])
    assert s.of("S-IN")[1]["template"] == "shipment_update.delivered"
    final_in = dict(await state(s, "S-IN"))
    final_out = dict(await state(s, "S-OUT"))
    assert final_in == final_out
    assert final_in["last_status"] == "delivered"
    await s.advance(72 * H)
    await s.sent(4)

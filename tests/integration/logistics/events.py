"""Shop events about shipments, written as the platform writes them (plain JSON dicts)."""

from datetime import date, datetime
from typing import Any

from tests.harness import cloud_event


def dispatched(
    order_id: str,
    shipment_id: str,
    *,
    at: datetime,
    service_level: str | None = "express",
    eta: date | datetime | None = None,
    carrier: str = "SF Express",
    event_id: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": order_id,
        "shipment_id": shipment_id,
        "carrier": carrier,
        "tracking_number": f"SF{abs(hash(shipment_id)) % 10**10:010d}",
        "dispatched_at": at.isoformat(),
        "destination": {"city": "上海市", "region": "上海市", "country": "CN"},
    }
    if service_level is not None:
        data["service_level"] = service_level
    if eta is not None:
        data["estimated_delivery"] = eta.isoformat()
    return cloud_event("shop.shipment.dispatched", data, time=at, event_id=event_id)


def scanned(
    order_id: str,
    shipment_id: str,
    status: str,
    *,
    at: datetime,
    location: str | None = "杭州转运中心",
    eta: date | datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": order_id,
        "shipment_id": shipment_id,
        "status": status,
        "scanned_at": at.isoformat(),
        "carrier_code": status.upper(),
        "description": status.replace("_", " "),
    }
    if location is not None:
        data["location"] = location
    if eta is not None:
        data["estimated_delivery"] = eta.isoformat()
    return cloud_event("shop.shipment.tracking", data, time=at, event_id=event_id)


def cancelled(order_id: str, *, at: datetime) -> dict[str, Any]:
    return cloud_event(
        "shop.order.cancelled",
        {"order_id": order_id, "cancelled_at": at.isoformat(), "reason": "changed_mind"},
        time=at,
    )

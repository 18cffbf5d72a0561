"""After-sales events as the shop platform writes them: plain JSON, not our models."""

from datetime import datetime
from typing import Any

from tests.harness import cloud_event


def aftersale(
    stage: str,
    case_id: str,
    order_id: str,
    at: datetime,
    *,
    event_id: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """One ``shop.aftersale.<stage>`` event; ``requested`` takes kind, amount, currency, reason."""
    payload: dict[str, Any] = {"case_id": case_id, "order_id": order_id}
    if stage == "requested":
        payload |= {"kind": "return_refund", "requested_at": at.isoformat(), **data}
    else:
        payload |= {"at": at.isoformat(), **data}
    return cloud_event(f"shop.aftersale.{stage}", payload, time=at, event_id=event_id)

"""The logistics decisions about an order, or every order of a customer: each notice,
follow-up, closing message and escalation, with its rule and evidence."""

import json
from typing import Any

from followup.db import Connection
from followup.history import HistoryEntry

# Evidence worth a glance in one line; the full evidence is in the message's meta.
_SHOWN = (
    "hours_without_scan",
    "threshold_hours",
    "last_scan_at",
    "promised_delivery",
    "revised_delivery",
    "dispatch_due",
    "failed_attempts",
    "status",
    "location",
    "resolution",
)


def _detail(rule: str | None, severity: str | None, evidence: dict[str, Any] | str) -> str:
    # `followup history` connects without the services' jsonb codec: the text arrives as is.
    if isinstance(evidence, str):
        evidence = json.loads(evidence)
        assert isinstance(evidence, dict)  # noqa: S101 - written by record_notices
    shown = [f"{k}={evidence[k]}" for k in _SHOWN if evidence.get(k) is not None]
    head = ", ".join(p for p in (rule, severity) if p)
    return "; ".join(p for p in (head, ", ".join(shown)) if p)


async def history(
    conn: Connection, *, order_id: str | None, customer_id: str | None
) -> list[HistoryEntry]:
    # Shipment events carry no customer; the customer comes from the order.created seen.
    rows = await conn.fetch(
        "SELECT n.order_id, n.shipment_id, n.episode, n.stage, n.kind, n.rule, n.severity, "
        "n.evidence, n.decided_at FROM notices n LEFT JOIN orders o USING (order_id) "
        "WHERE ($1::text IS NULL OR n.order_id = $1) AND ($2::text IS NULL OR o.customer_id = $2) "
        "ORDER BY n.id",
        order_id,
        customer_id,
    )
    return [
        HistoryEntry(
            at=r["decided_at"],
            service="logistics",
            order_id=r["order_id"],
            what=" ".join(
                p for p in (r["kind"] or "episode", r["stage"], r["shipment_id"] or "") if p
            ),
            detail=_detail(r["rule"], r["severity"], r["evidence"]),
        )
        for r in rows
    ]

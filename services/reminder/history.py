"""The reminder decisions of an order, or of every order of a customer."""

from followup.db import Connection
from followup.history import HistoryEntry


def _what(tier: int | None, decision: str, reason: str) -> str:
    if reason.startswith("confirmation") or reason == "order_confirmation":
        return f"order confirmation {decision}"
    if decision == "recovered":
        return "order paid after a reminder" + (f" (tier {tier})" if tier else "")
    return f"reminder tier {tier} {decision}" if tier else f"reminders {decision}"


async def history(
    conn: Connection, *, order_id: str | None, customer_id: str | None
) -> list[HistoryEntry]:
    rows = await conn.fetch(
        "SELECT d.order_id, d.tier, d.decision, d.reason, d.decided_at, d.due_at, d.segment, "
        "o.variant FROM reminder_history d LEFT JOIN orders o USING (order_id) "
        "WHERE ($1::text IS NULL OR d.order_id = $1) AND ($2::text IS NULL OR o.customer_id = $2) "
        "ORDER BY d.decided_at, d.id, d.step",
        order_id,
        customer_id,
    )
    entries = []
    for r in rows:
        detail = [r["reason"]]
        if r["due_at"]:
            detail.append(f"due {r['due_at'].isoformat()}")
        if r["segment"]:
            detail.append(f"segment {r['segment']}")
        if r["variant"] and r["variant"] != "none":
            detail.append(f"group {r['variant']}")
        entries.append(
            HistoryEntry(
                at=r["decided_at"],
                service="reminder",
                order_id=r["order_id"],
                what=_what(r["tier"], r["decision"], r["reason"]),
                detail=", ".join(detail),
            )
        )
    return entries

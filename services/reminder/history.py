"""The reminder decisions of an order, or of every order of a customer."""

from followup.db import Connection
from followup.history import HistoryEntry


async def history(
    conn: Connection, *, order_id: str | None, customer_id: str | None
) -> list[HistoryEntry]:
    rows = await conn.fetch(
        "SELECT d.order_id, d.tier, d.decision, d.reason, d.decided_at, d.due_at "
        "FROM reminder_decisions d LEFT JOIN orders o USING (order_id) "
        "WHERE ($1::text IS NULL OR d.order_id = $1) AND ($2::text IS NULL OR o.customer_id = $2) "
        "ORDER BY d.id",
        order_id,
        customer_id,
    )
    return [
        HistoryEntry(
            at=r["decided_at"],
            service="reminder",
            order_id=r["order_id"],
            what=f"reminder tier {r['tier']} {r['decision']}"
            if r["tier"]
            else f"reminders {r['decision']}",
            detail=r["reason"] + (f", due {r['due_at'].isoformat()}" if r["due_at"] else ""),
        )
        for r in rows
    ]

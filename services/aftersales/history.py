"""What happened to the after-sales cases of an order, or of every order of a customer: each
step as it arrived (late and duplicate ones too), each promise started, kept or broken, each
message sent, skipped or withdrawn, and each escalation, at the moment it was decided."""

from followup.db import Connection
from followup.history import HistoryEntry


async def history(
    conn: Connection, *, order_id: str | None, customer_id: str | None
) -> list[HistoryEntry]:
    # The customer comes from the order details this service keeps (shop.orders); a case
    # whose order was never seen can still be found by its order id.
    rows = await conn.fetch(
        "SELECT l.at, l.order_id, l.what, l.detail FROM case_log l "
        "LEFT JOIN orders o USING (order_id) "
        "WHERE ($1::text IS NULL OR l.order_id = $1) "
        "AND ($2::text IS NULL OR o.customer_id = $2) ORDER BY l.id",
        order_id,
        customer_id,
    )
    return [
        HistoryEntry(
            at=r["at"],
            service="aftersales",
            order_id=r["order_id"],
            what=r["what"],
            detail=r["detail"],
        )
        for r in rows
    ]

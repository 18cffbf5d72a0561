"""SQL of the reminder service. Batches go in with unnest() so a batch is a few round trips."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from followup.db import Connection
from services.reminder.policy import OrderStatus


@dataclass(frozen=True)
class NewOrder:
    order_id: str
    customer_id: str
    locale: str
    timezone: str
    created_at: datetime
    pay_deadline: datetime
    total: Decimal
    currency: str
    details: dict[str, Any]
    created_event: str


@dataclass(frozen=True)
class Settlement:
    order_id: str
    status: OrderStatus
    at: datetime


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    status: OrderStatus
    customer_id: str | None
    locale: str | None
    timezone: str | None
    created_at: datetime | None
    pay_deadline: datetime | None
    total: Decimal | None
    currency: str | None
    details: dict[str, Any] | None
    created_event: str | None


@dataclass(frozen=True)
class Decision:
    order_id: str
    tier: int | None
    decision: str
    reason: str
    decided_at: datetime
    due_at: datetime | None = None


async def record_orders(conn: Connection, orders: Sequence[NewOrder]) -> None:
    """Insert or complete order rows; a status already settled by an earlier payment or
    cancellation is kept, so the order is remembered as not needing reminders."""
    if not orders:
        return
    # One row per order: a batch may carry the same order twice (republished under a new id).
    latest = {o.order_id: o for o in sorted(orders, key=lambda o: o.created_at)}
    ordered = sorted(latest.values(), key=lambda o: o.order_id)
    await conn.execute(
        """
        INSERT INTO orders (order_id, customer_id, locale, timezone, created_at, pay_deadline,
                            total, currency, details, created_event)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                             $6::timestamptz[], $7::numeric[], $8::text[], $9::jsonb[], $10::text[])
        ON CONFLICT (order_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id, locale = EXCLUDED.locale,
            timezone = EXCLUDED.timezone, created_at = EXCLUDED.created_at,
            pay_deadline = EXCLUDED.pay_deadline, total = EXCLUDED.total,
            currency = EXCLUDED.currency, details = EXCLUDED.details,
            created_event = EXCLUDED.created_event, updated_at = now()
        """,
        [o.order_id for o in ordered],
        [o.customer_id for o in ordered],
        [o.locale for o in ordered],
        [o.timezone for o in ordered],
        [o.created_at for o in ordered],
        [o.pay_deadline for o in ordered],
        [o.total for o in ordered],
        [o.currency for o in ordered],
        [o.details for o in ordered],
        [o.created_event for o in ordered],
    )


async def settle_orders(conn: Connection, settlements: Sequence[Settlement]) -> set[str]:
    """Mark orders paid, cancelled or closed (the first settlement wins, as on the platform);
    returns the ids that were unpaid or unknown until now."""
    if not settlements:
        return set()
    first: dict[str, Settlement] = {}
    for s in sorted(settlements, key=lambda s: s.at):
        first.setdefault(s.order_id, s)
    ordered = sorted(first.values(), key=lambda s: s.order_id)
    rows = await conn.fetch(
        """
        INSERT INTO orders (order_id, status, settled_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
        ON CONFLICT (order_id) DO UPDATE SET
            status = EXCLUDED.status, settled_at = EXCLUDED.settled_at, updated_at = now()
        WHERE orders.status = 'unpaid'
        RETURNING order_id
        """,
        [s.order_id for s in ordered],
        [s.status.value for s in ordered],
        [s.at for s in ordered],
    )
    return {r["order_id"] for r in rows}


async def lock_orders(conn: Connection, order_ids: Sequence[str]) -> dict[str, OrderRow]:
    """Read orders and hold them until commit, so a payment committing meanwhile waits for us
    and then sees the reminder we decided to send (and can cancel it)."""
    rows = await conn.fetch(
        "SELECT order_id, status, customer_id, locale, timezone, created_at, pay_deadline, "
        "total, currency, details, created_event FROM orders "
        "WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE",
        sorted(set(order_ids)),
    )
    return {
        r["order_id"]: OrderRow(**{**dict(r), "status": OrderStatus(r["status"])}) for r in rows
    }


async def record_decisions(conn: Connection, decisions: Sequence[Decision]) -> None:
    if not decisions:
        return
    await conn.executemany(
        "INSERT INTO reminder_decisions (order_id, tier, decision, reason, decided_at, due_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        [(d.order_id, d.tier, d.decision, d.reason, d.decided_at, d.due_at) for d in decisions],
    )


async def orders_with_sent_reminders(conn: Connection, order_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT order_id FROM reminder_decisions "
        "WHERE order_id = ANY($1::text[]) AND decision = 'sent'",
        list(order_ids),
    )
    return {r["order_id"] for r in rows}


async def order_history(conn: Connection, order_id: str) -> list[Decision]:
    rows = await conn.fetch(
        "SELECT order_id, tier, decision, reason, decided_at, due_at FROM reminder_decisions "
        "WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    return [Decision(**dict(r)) for r in rows]

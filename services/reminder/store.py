"""SQL of the reminder service. Batches go in with unnest() so a batch is a few round trips.

Lock order, everywhere: order rows (sorted by id), then customer rows (sorted by id). Payments,
new orders and firing timers all follow it, so replicas never deadlock on each other.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from followup.db import Connection, batch_rows
from followup.values import value
from services.reminder.policy import CustomerFigures, OrderStatus


@value
class NewOrder:
    order_id: str
    customer_id: str
    locale: str
    timezone: str
    created_at: datetime
    pay_deadline: datetime
    total: Decimal
    currency: str
    details: str
    """Customer, items and address as JSON text, straight from the validated event."""
    created_event: str
    segment: str
    variant: str
    plan: list[list[Any]] | None = None
    """[tier, decision, reason, due time, last] per tier; None when nothing is planned."""
    planned_at: datetime | None = None


@value
class Settlement:
    order_id: str
    status: OrderStatus
    at: datetime
    amount: Decimal | None = None


@value
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
    settled_at: datetime | None
    segment: str | None
    variant: str | None
    paid_amount: Decimal | None
    reminded_tier: int | None
    last_reminded_at: datetime | None
    confirmed_at: datetime | None
    plan: list[list[Any]] | None
    """As planned at order.created: [tier, decision, reason, due time (RFC 3339), last]."""


_ORDER_FIELDS = [f.name for f in fields(OrderRow)]
_ORDER_COLUMNS = ", ".join(_ORDER_FIELDS)
_STATUS_AT, _DETAILS_AT, _PLAN_AT = (_ORDER_FIELDS.index(n) for n in ("status", "details", "plan"))
_STATUSES = {s.value: s for s in OrderStatus}


def _order(record: asyncpg.Record) -> OrderRow:
    # By position (the columns are selected in the order of the fields): building the row by
    # keyword from dict(record), with OrderStatus() looking the status up, cost three times as
    # much, and firing reads every order of a batch and its customers' other open orders.
    values = list(record)
    values[_STATUS_AT] = _STATUSES[values[_STATUS_AT]]
    for at in (_DETAILS_AT, _PLAN_AT):
        if values[at] is not None:
            values[at] = orjson.loads(values[at])
    return OrderRow(*values)


@value
class OrderState:
    status: OrderStatus
    segment: str | None
    variant: str | None


@value
class Decision:
    order_id: str
    tier: int | None
    decision: str
    reason: str
    decided_at: datetime
    due_at: datetime | None = None
    segment: str | None = None


@value
class ReminderMessage:
    idempotency_key: str
    customer_id: str
    order_ids: list[str]
    tier: int
    segment: str
    variant: str
    decided_at: datetime
    expires_at: datetime


async def created_orders(conn: Connection, order_ids: Sequence[str]) -> set[str]:
    """Orders whose ``order.created`` was already applied (under any event id)."""
    rows = await conn.fetch(
        "SELECT order_id FROM orders WHERE created_event IS NOT NULL "
        "AND order_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))",
        json.dumps(list(set(order_ids))),
    )
    return {r["order_id"] for r in rows}


async def record_orders(conn: Connection, orders: Sequence[NewOrder]) -> dict[str, OrderState]:
    """Insert or complete order rows (one per order); a status already settled by an earlier
    payment or cancellation is kept, so the order is remembered as not needing reminders.
    Returns each order's state as stored, the rows locked until commit."""
    if not orders:
        return {}
    ordered = sorted(orders, key=lambda o: o.order_id)
    rows = await conn.fetch(
        """
        INSERT INTO orders (order_id, customer_id, locale, timezone, created_at, pay_deadline,
                            total, currency, details, created_event, segment, variant, plan,
                            planned_at)
        SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::timestamptz,
               (r->>5)::timestamptz, (r->>6)::numeric, r->>7, details::json,
               r->>8, r->>9, r->>10, nullif(r->11, 'null')::json, (r->>12)::timestamptz
        -- The details (half a kilobyte each) go beside the rows as text, zipped back by
        -- position: inside the JSON document PostgreSQL would parse them into jsonb and print
        -- them back (bench/: 41-50 against 52-66 us per order for the statement).
        FROM ROWS FROM (jsonb_array_elements($1::text::jsonb), unnest($2::text[]))
             AS batch(r, details)
        ON CONFLICT (order_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id, locale = EXCLUDED.locale,
            timezone = EXCLUDED.timezone, created_at = EXCLUDED.created_at,
            pay_deadline = EXCLUDED.pay_deadline, total = EXCLUDED.total,
            currency = EXCLUDED.currency, details = EXCLUDED.details,
            created_event = EXCLUDED.created_event,
            segment = coalesce(orders.segment, EXCLUDED.segment),
            variant = coalesce(orders.variant, EXCLUDED.variant),
            -- The plan of an order already created stays; one settled first gets none.
            plan = CASE WHEN orders.created_event IS NOT NULL THEN orders.plan
                        WHEN orders.status = 'unpaid' THEN EXCLUDED.plan END,
            planned_at = CASE WHEN orders.created_event IS NOT NULL THEN orders.planned_at
                              WHEN orders.status = 'unpaid' THEN EXCLUDED.planned_at END,
            updated_at = now()
        RETURNING order_id, status, segment, variant
        """,
        batch_rows(
            (
                o.order_id,
                o.customer_id,
                o.locale,
                o.timezone,
                o.created_at,
                o.pay_deadline,
                o.total,
                o.currency,
                o.created_event,
                o.segment,
                o.variant,
                o.plan,
                o.planned_at if o.plan is not None else None,
            )
            for o in ordered
        ),
        [o.details for o in ordered],
    )
    return {
        r["order_id"]: OrderState(OrderStatus(r["status"]), r["segment"], r["variant"])
        for r in rows
    }


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
        INSERT INTO orders (order_id, status, settled_at, paid_amount)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::numeric[])
        ON CONFLICT (order_id) DO UPDATE SET
            status = EXCLUDED.status, settled_at = EXCLUDED.settled_at,
            paid_amount = EXCLUDED.paid_amount, updated_at = now()
        WHERE orders.status = 'unpaid'
        RETURNING order_id
        """,
        [s.order_id for s in ordered],
        [s.status.value for s in ordered],
        [s.at for s in ordered],
        [s.amount for s in ordered],
    )
    return {r["order_id"] for r in rows}


async def credit_customers(conn: Connection, order_ids: Sequence[str]) -> None:
    """Count paid orders whose customer is known into the customer's own figures, once each
    (``counted``): the payment and the order may arrive in either order."""
    if not order_ids:
        return
    await conn.execute(
        """
        WITH credited AS (
            UPDATE orders SET counted = true
            WHERE order_id = ANY($1::text[]) AND status = 'paid' AND NOT counted
              AND customer_id IS NOT NULL
            RETURNING customer_id, coalesce(paid_amount, total, 0) AS amount, settled_at
        )
        INSERT INTO customers (customer_id, paid_orders, total_spent, last_paid_at)
        SELECT customer_id, count(*), sum(amount), max(settled_at)
        FROM credited GROUP BY customer_id ORDER BY customer_id
        ON CONFLICT (customer_id) DO UPDATE SET
            paid_orders = customers.paid_orders + EXCLUDED.paid_orders,
            total_spent = customers.total_spent + EXCLUDED.total_spent,
            last_paid_at = greatest(customers.last_paid_at, EXCLUDED.last_paid_at),
            updated_at = now()
        """,
        sorted(set(order_ids)),
    )


async def customer_figures(
    conn: Connection, customer_ids: Sequence[str]
) -> dict[str, CustomerFigures]:
    rows = await conn.fetch(
        "SELECT customer_id, paid_orders, total_spent, last_paid_at FROM customers "
        "WHERE customer_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))",
        json.dumps(list(set(customer_ids))),
    )
    return {
        r["customer_id"]: CustomerFigures(r["paid_orders"], r["total_spent"], r["last_paid_at"])
        for r in rows
    }


async def lock_orders(conn: Connection, order_ids: Sequence[str]) -> dict[str, OrderRow]:
    """Read orders and hold them until commit, so a payment committing meanwhile waits for us
    and then sees the reminder we decided to send (and can cancel it)."""
    rows = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM orders "
        "WHERE order_id IN (SELECT jsonb_array_elements_text($1::text::jsonb)) "
        "ORDER BY order_id FOR UPDATE",
        json.dumps(sorted(set(order_ids))),
    )
    return {r["order_id"]: _order(r) for r in rows}


async def lock_orders_and_open_siblings(
    conn: Connection, order_ids: Sequence[str]
) -> dict[str, OrderRow]:
    """Lock these orders and every other unpaid order of their customers, in one sorted pass:
    a reminder lists all of a customer's open orders, and a payment of any of them must wait
    for it and see it. Two reminders for one customer (different orders, other replicas)
    queue on the same rows here, so the second reads the customer's last reminder time after
    the first has committed it: that is what keeps the minimum gap."""
    rows = await conn.fetch(
        f"""
        WITH wanted AS (SELECT jsonb_array_elements_text($1::text::jsonb) AS order_id)
        SELECT {_ORDER_COLUMNS} FROM orders
        WHERE order_id IN (
            SELECT order_id FROM wanted
            UNION
            -- One IN over a UNION, not an OR of two: the OR makes PostgreSQL walk the whole
            -- primary key instead of looking up each order and each customer's orders.
            SELECT s.order_id FROM orders o JOIN wanted USING (order_id)
            CROSS JOIN LATERAL (
                -- Each customer's orders through their index, whatever the statistics say:
                -- OFFSET 0 keeps PostgreSQL from flattening this into a join, which it would
                -- run as a scan of every order when a burst of new orders has not been
                -- analyzed yet (bench/: 25 against 3 ms for 200 due orders among 50,000).
                SELECT s.order_id FROM orders s
                WHERE s.customer_id = o.customer_id AND s.status = 'unpaid'
                  AND s.details IS NOT NULL
                OFFSET 0) s)
        ORDER BY order_id FOR UPDATE
        """,
        json.dumps(sorted(set(order_ids))),
    )
    return {r["order_id"]: _order(r) for r in rows}


async def last_reminded(conn: Connection, customer_ids: Sequence[str]) -> dict[str, datetime]:
    """When each customer was last reminded. Read after their open orders were locked (see
    ``lock_orders_and_open_siblings``), so no row lock of their own is needed."""
    rows = await conn.fetch(
        "SELECT customer_id, last_reminded_at FROM customers WHERE last_reminded_at IS NOT NULL "
        "AND customer_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))",
        json.dumps(sorted(set(customer_ids))),
    )
    return {r["customer_id"]: r["last_reminded_at"] for r in rows}


async def mark_reminded(
    conn: Connection, reminded: Sequence[tuple[str, int | None, datetime]]
) -> None:
    """Orders that appeared in a reminder: (order, its own tier if one was used, when)."""
    if not reminded:
        return
    await conn.execute(
        """
        UPDATE orders o SET
            reminded_tier = coalesce(greatest(o.reminded_tier, r.tier), o.reminded_tier, r.tier),
            last_reminded_at = greatest(o.last_reminded_at, r.at), updated_at = now()
        FROM (SELECT e->>0 AS order_id, (e->>1)::integer AS tier, (e->>2)::timestamptz AS at
              FROM jsonb_array_elements($1::text::jsonb) AS e) AS r
        WHERE o.order_id = r.order_id
        """,
        batch_rows(sorted(reminded, key=lambda r: r[0])),
    )


async def mark_customers_reminded(conn: Connection, reminded: Mapping[str, datetime]) -> None:
    if not reminded:
        return
    await conn.execute(
        """
        INSERT INTO customers (customer_id, last_reminded_at)
        SELECT r->>0, (r->>1)::timestamptz FROM jsonb_array_elements($1::text::jsonb) AS r
        ON CONFLICT (customer_id) DO UPDATE SET
            last_reminded_at = greatest(customers.last_reminded_at, EXCLUDED.last_reminded_at),
            updated_at = now()
        """,
        batch_rows(sorted(reminded.items())),
    )


async def record_messages(conn: Connection, messages: Sequence[ReminderMessage]) -> None:
    """Reminders that list several orders (see ``messages_to_cancel``)."""
    messages = [m for m in messages if len(m.order_ids) > 1]
    if not messages:
        return
    await conn.execute(
        "INSERT INTO reminder_messages (idempotency_key, customer_id, order_ids, tier, segment, "
        "variant, decided_at, expires_at) "
        "SELECT r->>0, r->>1, ARRAY(SELECT jsonb_array_elements_text(r->2)), (r->>3)::integer, "
        "r->>4, r->>5, (r->>6)::timestamptz, (r->>7)::timestamptz "
        "FROM jsonb_array_elements($1::text::jsonb) AS r ON CONFLICT DO NOTHING",
        batch_rows(
            (
                m.idempotency_key,
                m.customer_id,
                m.order_ids,
                m.tier,
                m.segment,
                m.variant,
                m.decided_at,
                m.expires_at,
            )
            for m in messages
        ),
    )


def reminder_key(order_id: str, tier: int) -> str:
    """The idempotency key of a tier's reminder, which leads with this order."""
    return f"unpaid_reminder:{order_id}:{tier}"


async def messages_to_cancel(
    conn: Connection, settled: Sequence[str], now: datetime
) -> list[ReminderMessage]:
    """Reminders not yet expired that list a just-settled order and no order still open: the
    notifier should drop them if they have not left yet. A reminder about one order is known
    from its "sent" decision (reason ``tier_due``); only those that list several orders have
    a row of their own (``reminder_messages``)."""
    listing_several = await conn.fetch(
        """
        SELECT m.* FROM reminder_messages m
        WHERE m.customer_id IN (SELECT customer_id FROM orders WHERE order_id = ANY($1::text[]))
          AND m.order_ids && $1::text[] AND m.expires_at > $2
          AND NOT EXISTS (
              SELECT 1 FROM orders o
              WHERE o.order_id = ANY(m.order_ids) AND o.status = 'unpaid')
        """,
        list(settled),
        now,
    )
    about_one = await conn.fetch(
        """
        SELECT d.order_id, d.tier, o.customer_id, d.segment, o.variant, d.decided_at,
               o.pay_deadline
        FROM reminder_decisions d JOIN orders o USING (order_id)
        WHERE d.order_id = ANY($1::text[]) AND d.decision = 'sent' AND d.reason = 'tier_due'
          AND o.pay_deadline > $2
        """,
        list(settled),
        now,
    )
    messages = {r["idempotency_key"]: ReminderMessage(**dict(r)) for r in listing_several}
    for order_id, tier, customer_id, segment, variant, decided_at, pay_deadline in about_one:
        key = reminder_key(order_id, tier)
        messages[key] = ReminderMessage(
            key, customer_id, [order_id], tier, segment, variant, decided_at, pay_deadline
        )
    return [messages[key] for key in sorted(messages)]


async def confirm_once(conn: Connection, order_ids: Sequence[str], now: datetime) -> set[str]:
    """Orders paid and known whose confirmation has not been decided yet; marks them."""
    if not order_ids:
        return set()
    rows = await conn.fetch(
        "UPDATE orders SET confirmed_at = $2, updated_at = now() "
        "WHERE order_id = ANY($1::text[]) AND status = 'paid' AND details IS NOT NULL "
        "AND confirmed_at IS NULL RETURNING order_id",
        sorted(set(order_ids)),
        now,
    )
    return {r["order_id"] for r in rows}


async def record_decisions(conn: Connection, decisions: Sequence[Decision]) -> None:
    if not decisions:
        return
    await conn.execute(
        "INSERT INTO reminder_decisions "
        "(order_id, tier, decision, reason, decided_at, due_at, segment) "
        "SELECT r->>0, (r->>1)::integer, r->>2, r->>3, (r->>4)::timestamptz, "
        "(r->>5)::timestamptz, r->>6 FROM jsonb_array_elements($1::text::jsonb) r",
        batch_rows(
            (d.order_id, d.tier, d.decision, d.reason, d.decided_at, d.due_at, d.segment)
            for d in decisions
        ),
    )

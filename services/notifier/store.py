"""SQL of the notifier: the delivery queue and its log, recipients, opt-outs, the contact budget
and remembered cancellations. Every write takes whole batches (unnest), never a row a trip."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import asyncpg

from contracts.notifications import CancelNotification, NotificationKind, SendNotification
from followup.db import Connection, batch_rows
from followup.values import value
from services.notifier.policy import Recipient

# Message ids are derived from the idempotency key: the same command always names the same
# message, whichever replica accepts it and however often.
_MESSAGE_IDS = uuid.UUID("0b6e4f4e-9b7c-4d55-8f0e-2f3a1c9d7e21")

_COLUMN_NAMES = (
    "message_id",
    "idempotency_key",
    "kind",
    "template",
    "customer_id",
    "order_id",
    "case_id",
    "locale",
    "timezone",
    "variables",
    "meta",
    "priority",
    "message_class",
    "not_before",
    "expires_at",
    "source_event_id",
    "source_event_time",
    "command_time",
    "accepted_at",
    "status",
    "reason",
    "attempts",
    "next_attempt_at",
    "channel",
    "dead_channels",
)
_COLUMNS = ", ".join(_COLUMN_NAMES)
_D_COLUMNS = ", ".join(f"d.{c}" for c in _COLUMN_NAMES)


def message_id_for(idempotency_key: str) -> uuid.UUID:
    return uuid.uuid5(_MESSAGE_IDS, idempotency_key)


@value
class Delivery:
    message_id: uuid.UUID
    idempotency_key: str
    kind: str
    template: str
    customer_id: str | None
    order_id: str | None
    case_id: str | None
    locale: str | None
    timezone: str | None
    variables: dict[str, Any]
    meta: dict[str, Any]
    priority: str
    message_class: str
    not_before: datetime | None
    expires_at: datetime | None
    source_event_id: str | None
    source_event_time: datetime | None
    command_time: datetime
    accepted_at: datetime
    status: str
    reason: str | None
    attempts: int
    next_attempt_at: datetime
    channel: str | None
    dead_channels: list[str]


@value
class Attempt:
    message_id: uuid.UUID
    attempt: int
    channel: str
    provider: str
    outcome: str
    detail: str
    started_at: datetime
    duration_ms: float


# The fields in the order of the delivery_attempts columns they are written to.
_ATTEMPT_ROW = attrgetter(*(f.name for f in fields(Attempt)))


@value
class DeliveryEvent:
    message_id: uuid.UUID
    at: datetime
    event: str
    """accepted, held, released, deferred, merged, skipped_channel, suppressed, failed …"""
    detail: str = ""


@value
class Result:
    """The end (or the next try) of one message, written with others in one statement."""

    message_id: uuid.UUID
    status: str
    """sent, failed, suppressed, or pending (tried again at ``next_attempt_at``)."""
    reason: str | None
    channel: str | None = None
    provider: str | None = None
    attempted: bool = False
    """A provider was called: the attempt counts."""
    next_attempt_at: datetime | None = None
    dead_channels: Sequence[str] = ()
    first_call_at: datetime | None = None


def _deliveries(rows: Sequence[asyncpg.Record]) -> list[Delivery]:
    return [Delivery(**dict(r)) for r in rows]


# --- intake ----------------------------------------------------------------------------------


async def accept(
    conn: Connection,
    commands: Sequence[tuple[SendNotification, datetime]],
    now: datetime,
    *,
    hold_for_recipient: timedelta,
    recheck: timedelta,
) -> list[Delivery]:
    """Queue commands not seen before; returns only the newly queued ones. A customer message
    without a customer is resolved from its order, or held until order.created says who
    ordered it (never past its expiry)."""
    if not commands:
        return []
    unique = {c.idempotency_key: (c, t) for c, t in commands}
    ordered = sorted(unique.values(), key=lambda ct: ct[0].idempotency_key)
    # Held messages are looked at again every `recheck` (an order.created committed in
    # parallel with this batch is missed by both sides), at the latest when the hold ends.
    hold_end = now + min(hold_for_recipient, recheck)
    rows = await conn.fetch(
        f"""
        INSERT INTO deliveries (message_id, idempotency_key, kind, template, customer_id,
            order_id, case_id, locale, timezone, variables, meta, priority, message_class,
            not_before, expires_at, source_event_id, source_event_time, command_time,
            accepted_at, status, next_attempt_at, reason, finished_at)
        SELECT c.m, c.k, c.kind, c.tpl, coalesce(c.cust, ro.customer_id), c.ord, c.cas, c.loc,
               c.tz, c.vars, c.meta, c.prio, c.cls, c.nb, c.exp, c.sid, c.stime, c.ctime, $2,
               CASE WHEN x.reason IS NOT NULL THEN 'suppressed'
                    WHEN c.held AND ro.customer_id IS NULL THEN 'held' ELSE 'pending' END,
               CASE WHEN c.held AND ro.customer_id IS NULL THEN least(c.exp, $3::timestamptz)
                    ELSE greatest(c.nb, $2::timestamptz) END,
               'cancelled: ' || x.reason,
               CASE WHEN x.reason IS NOT NULL THEN $2::timestamptz END
        FROM (
            SELECT (r->>0)::uuid AS m, r->>1 AS k, r->>2 AS kind, r->>3 AS tpl, r->>4 AS cust,
                   r->>5 AS ord, r->>6 AS cas, r->>7 AS loc, r->>8 AS tz, r->9 AS vars,
                   r->10 AS meta, r->>11 AS prio, r->>12 AS cls, (r->>13)::timestamptz AS nb,
                   (r->>14)::timestamptz AS exp, r->>15 AS sid, (r->>16)::timestamptz AS stime,
                   (r->>17)::timestamptz AS ctime, (r->>18)::bool AS held
            FROM jsonb_array_elements($1::text::jsonb) AS r
        ) c
        LEFT JOIN recipient_orders ro ON c.held AND ro.order_id = c.ord
        -- A cancellation that overtook its command: the message is recorded, never sent.
        LEFT JOIN LATERAL (
            SELECT reason FROM cancellations x
            WHERE x.idempotency_key = c.k OR (x.order_id = c.ord AND x.kind = c.kind)
            LIMIT 1
        ) x ON true
        ORDER BY c.k
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        batch_rows(
            (
                message_id_for(c.idempotency_key),
                c.idempotency_key,
                c.kind.value,
                c.template or c.kind.value,
                c.customer_id,
                c.order_id,
                c.case_id,
                c.locale,
                c.timezone,
                c.variables,
                c.meta,
                c.priority.value,
                c.message_class.value,
                c.not_before,
                c.expires_at,
                c.source_event_id,
                c.source_event_time,
                t,
                c.customer_id is None
                and c.order_id is not None
                and c.kind is not NotificationKind.OPS_ESCALATION,
            )
            for c, t in ordered
        ),
        now,
        hold_end,
    )
    return _deliveries(rows)


async def remember_cancellations(
    conn: Connection, cancels: Sequence[CancelNotification], now: datetime
) -> None:
    rows: list[tuple[str | None, str | None, str | None, str]] = [
        (key, None, None, c.reason) for c in cancels for key in c.idempotency_keys
    ]
    rows += [(None, c.order_id, k.value, c.reason) for c in cancels if c.order_id for k in c.kinds]
    if rows:
        await conn.execute(
            "INSERT INTO cancellations (idempotency_key, order_id, kind, reason, cancelled_at) "
            "SELECT k, o, kind, r, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
            " AS c(k, o, kind, r)",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            now,
        )


async def suppress_cancelled(
    conn: Connection,
    now: datetime,
    *,
    message_ids: Sequence[uuid.UUID] = (),
    keys: Sequence[str] = (),
    orders: Sequence[str] = (),
) -> list[Delivery]:
    """Suppress waiting messages that a remembered cancellation covers, among the given
    messages, idempotency keys and orders."""
    if not (message_ids or keys or orders):
        return []
    rows = await conn.fetch(
        f"""
        WITH candidates AS (
            -- One index lookup per list; an OR across them would scan the whole queue.
            SELECT message_id FROM deliveries WHERE message_id = ANY($1::uuid[])
            UNION SELECT message_id FROM deliveries WHERE idempotency_key = ANY($2::text[])
            UNION SELECT message_id FROM deliveries WHERE order_id = ANY($3::text[])
        ), hit AS (
            SELECT d.message_id, c.reason
            FROM deliveries d
            JOIN candidates USING (message_id)
            JOIN LATERAL (
                SELECT reason FROM cancellations c
                WHERE c.idempotency_key = d.idempotency_key
                   OR (c.order_id = d.order_id AND c.kind = d.kind)
                LIMIT 1
            ) c ON true
            WHERE d.status IN ('pending', 'held')
            FOR UPDATE OF d
        )
        UPDATE deliveries d
        SET status = 'suppressed', reason = 'cancelled: ' || hit.reason, finished_at = $4
        FROM hit WHERE d.message_id = hit.message_id
        RETURNING {_D_COLUMNS}
        """,
        list(message_ids),
        list(keys),
        list(orders),
        now,
    )
    return _deliveries(rows)


# --- recipients ------------------------------------------------------------------------------


async def record_recipients(
    conn: Connection,
    recipients: Sequence[tuple[Recipient, datetime]],
    orders: Sequence[tuple[str, str, datetime]],
) -> None:
    """Upsert contact data (the newest order event wins) and which customer placed each order."""
    latest: dict[str, tuple[Recipient, datetime]] = {}
    for recipient, at in recipients:
        if recipient.customer_id not in latest or latest[recipient.customer_id][1] <= at:
            latest[recipient.customer_id] = (recipient, at)
    rows = sorted(latest.values(), key=lambda ra: ra[0].customer_id)
    if rows:
        await conn.execute(
            """
            INSERT INTO recipients (customer_id, name, locale, timezone, phone, email, updated_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::timestamptz[])
            ON CONFLICT (customer_id) DO UPDATE SET
                name = EXCLUDED.name, locale = EXCLUDED.locale, timezone = EXCLUDED.timezone,
                phone = EXCLUDED.phone, email = EXCLUDED.email, updated_at = EXCLUDED.updated_at
            WHERE recipients.updated_at <= EXCLUDED.updated_at
            """,
            [r.customer_id for r, _ in rows],
            [r.name for r, _ in rows],
            [r.locale for r, _ in rows],
            [r.timezone for r, _ in rows],
            [r.phone for r, _ in rows],
            [r.email for r, _ in rows],
            [at for _, at in rows],
        )
    by_order = sorted({o[0]: o for o in orders}.values())
    if by_order:
        await conn.execute(
            "INSERT INTO recipient_orders (order_id, customer_id, recorded_at) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) "
            "ON CONFLICT (order_id) DO NOTHING",
            [o[0] for o in by_order],
            [o[1] for o in by_order],
            [o[2] for o in by_order],
        )


async def release_resolvable(conn: Connection, now: datetime) -> list[Delivery]:
    """Held messages due for a look whose order has become known since."""
    rows = await conn.fetch(
        f"""
        UPDATE deliveries d SET status = 'pending', customer_id = ro.customer_id, reason = NULL,
            next_attempt_at = greatest(d.not_before, $1::timestamptz)
        FROM recipient_orders ro
        WHERE d.status = 'held' AND d.next_attempt_at <= $1 AND d.order_id = ro.order_id
        RETURNING {_D_COLUMNS}
        """,
        now,
    )
    return _deliveries(rows)


async def release_held(conn: Connection, order_ids: Sequence[str], now: datetime) -> list[Delivery]:
    """Messages that waited for these orders now know their recipient and become due."""
    rows = await conn.fetch(
        f"""
        UPDATE deliveries d SET status = 'pending', customer_id = ro.customer_id, reason = NULL,
            next_attempt_at = greatest(d.not_before, $2::timestamptz)
        FROM recipient_orders ro
        WHERE d.status = 'held' AND d.order_id = ro.order_id AND ro.order_id = ANY($1::text[])
        RETURNING {_D_COLUMNS}
        """,
        list(order_ids),
        now,
    )
    return _deliveries(rows)


async def customer_facts(
    conn: Connection,
    customers: Sequence[str],
    *,
    since: datetime,
    excluding: Sequence[uuid.UUID],
) -> tuple[dict[str, Recipient], dict[str, set[tuple[str, str]]], dict[str, list[datetime]]]:
    """Contact data, opt-outs and budget-counted contacts since ``since`` of these customers;
    run it after ``claim_due`` in the same transaction, which locked their budgets."""
    ordered = sorted(set(customers))
    if not ordered:
        return {}, {}, {}
    # One round trip for all three, after claim_due() locked these customers.
    rows = await conn.fetch(
        """
        SELECT c AS customer_id, r.customer_id IS NOT NULL AS known, r.name, r.locale,
               r.timezone, r.phone, r.email,
               ARRAY(SELECT o.channel || ' ' || o.message_class FROM opt_outs o
                     WHERE o.customer_id = c) AS opt_outs,
               ARRAY(SELECT k.at FROM contacts k WHERE k.customer_id = c AND k.at > $2
                     AND k.message_id <> ALL($3::uuid[])) AS contacts
        FROM unnest($1::text[]) c LEFT JOIN recipients r ON r.customer_id = c
        """,
        ordered,
        since,
        list(excluding),
    )
    recipients: dict[str, Recipient] = {}
    opt_outs: dict[str, set[tuple[str, str]]] = {}
    contacts: dict[str, list[datetime]] = {}
    for r in rows:
        customer = r["customer_id"]
        if r["known"]:
            recipients[customer] = Recipient(
                customer, r["name"], r["locale"], r["timezone"], r["phone"], r["email"]
            )
        if r["opt_outs"]:
            opt_outs[customer] = {
                (channel, message_class)
                for channel, _, message_class in (o.partition(" ") for o in r["opt_outs"])
            }
        if r["contacts"]:
            contacts[customer] = list(r["contacts"])
    return recipients, opt_outs, contacts


# --- the queue -------------------------------------------------------------------------------


async def reclaim_expired_leases(conn: Connection) -> int:
    """A crashed worker's messages come back once their lease has run out.

    Leases are on the database's clock, not the service's (business) clock: they measure how
    long a worker has been gone, which a replay or a test moving time must not shorten, and
    every replica then agrees on them whatever its own clock says."""
    result = await conn.execute(
        "UPDATE deliveries SET status = 'pending', lease_until = NULL "
        "WHERE status = 'sending' AND lease_until < clock_timestamp()"
    )
    return int(result.split()[-1])


async def claim_due(
    conn: Connection, now: datetime, limit: int, lease: timedelta
) -> list[Delivery]:
    """Take due messages (and holds that ran out), and lock their customers' budgets.

    The budget locks are transaction-scoped advisory locks, taken by every worker in the
    order of the lock keys: two batches with the same customer serialise here instead of
    both spending its last slot, and can never deadlock. ``customer_facts`` must read the
    contacts in a later statement, whose snapshot sees what the previous holder committed.
    """
    rows = await conn.fetch(
        f"""
        WITH due AS (
            SELECT message_id, status FROM deliveries
            WHERE status IN ('pending', 'held') AND next_attempt_at <= $1
            ORDER BY next_attempt_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE deliveries d SET status = 'sending', lease_until = clock_timestamp() + $3
            FROM due WHERE d.message_id = due.message_id
            RETURNING {_D_COLUMNS.replace("d.status", "due.status AS status")}
        ), locked AS (
            SELECT count(pg_advisory_xact_lock(k)) AS n FROM (
                SELECT DISTINCT hashtext('notifier-budget:' || customer_id) AS k FROM claimed
                WHERE customer_id IS NOT NULL AND kind <> 'ops_escalation' ORDER BY k
            ) keys
        )
        SELECT claimed.* FROM claimed, locked
        """,
        now,
        limit,
        lease,
    )
    return _deliveries(rows)


async def reserve_contacts(
    conn: Connection, reservations: Sequence[tuple[uuid.UUID, str]], now: datetime
) -> None:
    if reservations:
        await conn.execute(
            "INSERT INTO contacts (message_id, customer_id, at) "
            "SELECT (r->>0)::uuid, r->>1, $2 FROM jsonb_array_elements($1::text::jsonb) AS r "
            "ON CONFLICT (message_id) DO UPDATE SET at = EXCLUDED.at",
            batch_rows(reservations),
            now,
        )


async def defer(conn: Connection, deferrals: Sequence[tuple[uuid.UUID, datetime, str]]) -> None:
    if deferrals:
        await conn.execute(
            "UPDATE deliveries d SET lease_until = NULL, next_attempt_at = x.until, "
            "reason = x.reason, status = CASE WHEN x.reason = 'waiting_for_order' THEN 'held' "
            "ELSE 'pending' END "
            "FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS x(m, until, reason) "
            "WHERE d.message_id = x.m",
            [m for m, _, _ in deferrals],
            [u for _, u, _ in deferrals],
            [r for _, _, r in deferrals],
        )


async def merge_superseded(
    conn: Connection, newer: Sequence[uuid.UUID], now: datetime
) -> list[tuple[Delivery, uuid.UUID]]:
    """Over budget, one message per customer, kind, order and case is enough: waiting older
    ones are suppressed as merged into the newest, which carries the latest facts."""
    if not newer:
        return []
    rows = await conn.fetch(
        f"""
        WITH newest AS (
            SELECT message_id, customer_id, kind, order_id, case_id, command_time
            FROM deliveries WHERE message_id = ANY($1::uuid[])
        ), waiting AS (
            -- Rows another worker holds are left alone: merged on a later pass.
            SELECT o.message_id FROM deliveries o
            WHERE o.status = 'pending' AND o.reason = 'contact_budget'
              AND o.customer_id IN (SELECT customer_id FROM newest)
            FOR UPDATE SKIP LOCKED
        ), older AS (
            SELECT DISTINCT ON (o.message_id) o.message_id, n.message_id AS into_id
            FROM waiting w JOIN deliveries o USING (message_id) JOIN newest n
              ON o.customer_id = n.customer_id AND o.kind = n.kind
             AND o.order_id IS NOT DISTINCT FROM n.order_id
             AND o.case_id IS NOT DISTINCT FROM n.case_id
             AND o.message_id <> n.message_id
             AND (o.command_time, o.message_id) < (n.command_time, n.message_id)
            ORDER BY o.message_id, n.command_time DESC
        )
        UPDATE deliveries d SET status = 'suppressed', finished_at = $2,
            reason = 'merged: superseded by message ' || older.into_id
        FROM older WHERE d.message_id = older.message_id
        RETURNING {_D_COLUMNS}, older.into_id
        """,
        list(newer),
        now,
    )
    merged = []
    for r in rows:
        values = dict(r)
        into = values.pop("into_id")
        merged.append((Delivery(**values), into))
    return merged


async def finish(conn: Connection, outcomes: Sequence[Result], now: datetime) -> None:
    """Write the results of a batch of messages; a message that did not go out gives its
    budget slot back."""
    if not outcomes:
        return
    await conn.execute(
        """
        UPDATE deliveries d SET
            status = x.status, reason = x.reason,
            channel = coalesce(x.channel, d.channel), provider = coalesce(x.provider, d.provider),
            attempts = d.attempts + CASE WHEN x.attempted THEN 1 ELSE 0 END,
            next_attempt_at = coalesce(x.next_at, d.next_attempt_at),
            dead_channels = ARRAY(SELECT DISTINCT unnest(d.dead_channels || x.dead)),
            first_call_at = coalesce(d.first_call_at, x.first_call),
            finished_at = CASE WHEN x.status = 'pending' THEN NULL ELSE $2::timestamptz END,
            lease_until = NULL
        FROM (
            SELECT (r->>0)::uuid AS m, r->>1 AS status, r->>2 AS reason, r->>3 AS channel,
                   r->>4 AS provider, (r->>5)::bool AS attempted,
                   (r->>6)::timestamptz AS next_at, (r->>8)::timestamptz AS first_call,
                   ARRAY(SELECT jsonb_array_elements_text(r->7)) AS dead
            FROM jsonb_array_elements($1::text::jsonb) AS r
        ) x
        WHERE d.message_id = x.m
        """,
        batch_rows(
            (
                o.message_id,
                o.status,
                o.reason,
                o.channel,
                o.provider,
                o.attempted,
                o.next_attempt_at,
                list(o.dead_channels),
                o.first_call_at,
            )
            for o in outcomes
        ),
        now,
    )
    given_back = [o.message_id for o in outcomes if o.status != "sent"]
    if given_back:
        await conn.execute("DELETE FROM contacts WHERE message_id = ANY($1::uuid[])", given_back)


async def log_attempts(conn: Connection, attempts: Sequence[Attempt]) -> None:
    if attempts:
        await conn.execute(
            "INSERT INTO delivery_attempts (message_id, attempt, channel, provider, outcome, "
            "detail, started_at, duration_ms) "
            "SELECT (r->>0)::uuid, (r->>1)::int, r->>2, r->>3, r->>4, r->>5, "
            "(r->>6)::timestamptz, (r->>7)::float8 FROM jsonb_array_elements($1::text::jsonb) AS r",
            batch_rows(map(_ATTEMPT_ROW, attempts)),
        )


async def log_events(conn: Connection, events: Sequence[DeliveryEvent]) -> None:
    if events:
        await conn.execute(
            "INSERT INTO delivery_events (message_id, at, event, detail) "
            "SELECT (r->>0)::uuid, (r->>1)::timestamptz, r->>2, r->>3 "
            "FROM jsonb_array_elements($1::text::jsonb) AS r",
            batch_rows((e.message_id, e.at, e.event, e.detail) for e in events),
        )


async def queue_depth(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM deliveries "
        "WHERE status IN ('pending', 'held', 'sending') GROUP BY status"
    )
    depth = {"pending": 0, "held": 0, "sending": 0}
    depth.update({r["status"]: r["n"] for r in rows})
    return depth


# --- preferences -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OptOut:
    customer_id: str
    channel: str
    message_class: str
    source: str
    at: datetime


async def set_opt_outs(conn: Connection, changes: Sequence[tuple[OptOut, bool]]) -> None:
    """Apply opt-outs (True) and opt-ins (False) in order; an opt-in removes the matching
    opt-out only (opting back in to SMS does not undo an opt-out of every channel)."""
    for opt_out, out in changes:
        if out:
            await conn.execute(
                "INSERT INTO opt_outs (customer_id, channel, message_class, source, at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer_id, channel, message_class) "
                "DO UPDATE SET source = EXCLUDED.source, at = EXCLUDED.at",
                opt_out.customer_id,
                opt_out.channel,
                opt_out.message_class,
                opt_out.source,
                opt_out.at,
            )
        else:
            await conn.execute(
                "DELETE FROM opt_outs WHERE customer_id = $1 AND channel = $2 "
                "AND message_class = $3",
                opt_out.customer_id,
                opt_out.channel,
                opt_out.message_class,
            )


async def opt_outs_of(conn: Connection, customer_id: str) -> list[OptOut]:
    rows = await conn.fetch(
        "SELECT customer_id, channel, message_class, source, at FROM opt_outs "
        "WHERE customer_id = $1 ORDER BY channel, message_class",
        customer_id,
    )
    return [OptOut(**dict(r)) for r in rows]

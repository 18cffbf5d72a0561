"""SQL of the notifier: the delivery queue, its log, and remembered cancellations."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts.notifications import CancelNotification, SendNotification
from followup.db import Connection

# Message ids are derived from the idempotency key: the same command always names the same
# message, whichever replica accepts it and however often.
_MESSAGE_IDS = uuid.UUID("0b6e4f4e-9b7c-4d55-8f0e-2f3a1c9d7e21")

_COLUMNS = (
    "message_id, idempotency_key, kind, template, customer_id, order_id, case_id, locale, "
    "timezone, variables, meta, priority, message_class, not_before, expires_at, "
    "source_event_id, source_event_time, command_time, accepted_at, status, reason, attempts, "
    "next_attempt_at, channel"
)


def message_id_for(idempotency_key: str) -> uuid.UUID:
    return uuid.uuid5(_MESSAGE_IDS, idempotency_key)


@dataclass(frozen=True)
class Delivery:
    message_id: uuid.UUID
    idempotency_key: str
    kind: str
    template: str
    customer_id: str | None
    order_id: str | None
    case_id: str | None
    locale: str
    timezone: str
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


@dataclass(frozen=True)
class Attempt:
    message_id: uuid.UUID
    attempt: int
    channel: str
    provider: str
    outcome: str
    detail: str
    started_at: datetime
    duration_ms: float


def _deliveries(rows: Sequence[asyncpg.Record]) -> list[Delivery]:
    return [Delivery(**dict(r)) for r in rows]


async def accept(
    conn: Connection,
    commands: Sequence[tuple[SendNotification, datetime]],
    now: datetime,
    *,
    default_locale: str,
    default_timezone: str,
) -> list[Delivery]:
    """Queue commands not seen before; returns only the newly queued ones."""
    if not commands:
        return []
    unique = {c.idempotency_key: (c, t) for c, t in commands}
    ordered = sorted(unique.values(), key=lambda ct: ct[0].idempotency_key)
    rows = await conn.fetch(
        f"""
        INSERT INTO deliveries (message_id, idempotency_key, kind, template, customer_id,
            order_id, case_id, locale, timezone, variables, meta, priority, message_class,
            not_before, expires_at, source_event_id, source_event_time, command_time,
            accepted_at, next_attempt_at)
        SELECT m, k, kind, tpl, cust, ord, cas, loc, tz, vars, meta, prio, cls, nb, exp, sid,
               stime, ctime, $19::timestamptz, greatest(nb, $19::timestamptz)
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::jsonb[], $12::text[],
                    $13::text[], $14::timestamptz[], $15::timestamptz[], $16::text[],
                    $17::timestamptz[], $18::timestamptz[])
             AS c(m, k, kind, tpl, cust, ord, cas, loc, tz, vars, meta, prio, cls, nb, exp,
                  sid, stime, ctime)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        [message_id_for(c.idempotency_key) for c, _ in ordered],
        [c.idempotency_key for c, _ in ordered],
        [c.kind.value for c, _ in ordered],
        [c.template or c.kind.value for c, _ in ordered],
        [c.customer_id for c, _ in ordered],
        [c.order_id for c, _ in ordered],
        [c.case_id for c, _ in ordered],
        [c.locale or default_locale for c, _ in ordered],
        [c.timezone or default_timezone for c, _ in ordered],
        [c.variables for c, _ in ordered],
        [c.meta for c, _ in ordered],
        [c.priority.value for c, _ in ordered],
        [c.message_class.value for c, _ in ordered],
        [c.not_before for c, _ in ordered],
        [c.expires_at for c, _ in ordered],
        [c.source_event_id for c, _ in ordered],
        [c.source_event_time for c, _ in ordered],
        [t for _, t in ordered],
        now,
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
        await conn.executemany(
            "INSERT INTO cancellations (idempotency_key, order_id, kind, reason, cancelled_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(*row, now) for row in rows],
        )


async def suppress_cancelled(
    conn: Connection,
    now: datetime,
    *,
    message_ids: Sequence[uuid.UUID] = (),
    keys: Sequence[str] = (),
    orders: Sequence[str] = (),
) -> list[Delivery]:
    """Suppress pending messages that a remembered cancellation covers, among the given
    messages, idempotency keys and orders."""
    rows = await conn.fetch(
        f"""
        WITH hit AS (
            SELECT d.message_id, c.reason
            FROM deliveries d
            JOIN LATERAL (
                SELECT reason FROM cancellations c
                WHERE c.idempotency_key = d.idempotency_key
                   OR (c.order_id = d.order_id AND c.kind = d.kind)
                LIMIT 1
            ) c ON true
            WHERE d.status = 'pending'
              AND (d.message_id = ANY($1::uuid[]) OR d.idempotency_key = ANY($2::text[])
                   OR d.order_id = ANY($3::text[]))
            FOR UPDATE OF d
        )
        UPDATE deliveries d
        SET status = 'suppressed', reason = 'cancelled: ' || hit.reason, finished_at = $4
        FROM hit WHERE d.message_id = hit.message_id
        RETURNING {", ".join("d." + c.strip() for c in _COLUMNS.split(","))}
        """,
        list(message_ids),
        list(keys),
        list(orders),
        now,
    )
    return _deliveries(rows)


async def claim_due(
    conn: Connection, now: datetime, limit: int, lease_until: datetime
) -> list[Delivery]:
    """Take due messages for sending; a crashed worker's lease runs out and they return."""
    await conn.execute(
        "UPDATE deliveries SET status = 'pending', lease_until = NULL "
        "WHERE status = 'sending' AND lease_until < $1",
        now,
    )
    rows = await conn.fetch(
        f"""
        UPDATE deliveries d SET status = 'sending', lease_until = $3, attempts = attempts + 1
        WHERE message_id IN (
            SELECT message_id FROM deliveries
            WHERE status = 'pending' AND next_attempt_at <= $1
            ORDER BY next_attempt_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        RETURNING {_COLUMNS}
        """,
        now,
        limit,
        lease_until,
    )
    return _deliveries(rows)


async def next_due(conn: Connection) -> datetime | None:
    due: datetime | None = await conn.fetchval(
        "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'"
    )
    return due


async def finish(
    conn: Connection,
    message_id: uuid.UUID,
    *,
    status: str,
    reason: str | None,
    channel: str | None,
    now: datetime,
) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = $2, reason = $3, channel = $4, finished_at = $5, "
        "lease_until = NULL WHERE message_id = $1",
        message_id,
        status,
        reason,
        channel,
        now,
    )


async def retry_later(
    conn: Connection, message_id: uuid.UUID, *, at: datetime, reason: str
) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, reason = $3, "
        "lease_until = NULL WHERE message_id = $1",
        message_id,
        at,
        reason,
    )


async def log_attempts(conn: Connection, attempts: Sequence[Attempt]) -> None:
    if attempts:
        await conn.executemany(
            "INSERT INTO delivery_attempts (message_id, attempt, channel, provider, outcome, "
            "detail, started_at, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (
                    a.message_id,
                    a.attempt,
                    a.channel,
                    a.provider,
                    a.outcome,
                    a.detail,
                    a.started_at,
                    a.duration_ms,
                )
                for a in attempts
            ],
        )


async def queue_depth(conn: Connection) -> int:
    depth: int = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
    return depth

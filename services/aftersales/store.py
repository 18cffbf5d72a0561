"""SQL of the after-sales service. A batch is a few statements: arrays or one JSON document
in (``batch_rows``), rows out."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import asyncpg

from contracts.shop import AftersaleKind
from followup.db import Connection, batch_rows, json_arg
from services.aftersales.messages import OrderFacts
from services.aftersales.policy import (
    Case,
    MessageRecord,
    Promise,
    PromiseKind,
    PromiseOutcome,
    Stage,
)

_STAGE_COLUMNS = {stage: f"{stage.value}_at" for stage in Stage}
_DETAIL_COLUMNS = (
    "amount",
    "currency",
    "reason",
    "reject_reason",
    "return_carrier",
    "return_tracking",
    "refund_amount",
    "refund_currency",
    "refund_method",
    "last_visible_at",
    "updates_sent",
    "breached",
)
_CASE_COLUMNS = (
    "case_id",
    "order_id",
    "kind",
    "stage",
    "stage_rank",
    "stage_at",
    *_STAGE_COLUMNS.values(),
    "event_ids",
    *_DETAIL_COLUMNS,
)


@dataclass(frozen=True)
class MessageRow:
    case_id: str
    name: str
    order_id: str
    kind: str
    decision: str
    reason: str | None
    idempotency_key: str | None
    template: str | None
    decided_at: datetime


# The fields in the order of the case_messages columns they are written to.
_MESSAGE_ROW = attrgetter(*(f.name for f in fields(MessageRow)))


@dataclass(frozen=True)
class LogEntry:
    case_id: str
    order_id: str
    at: datetime
    what: str
    detail: str = ""


@dataclass(frozen=True)
class NewOrder:
    order_id: str
    customer_id: str
    customer_name: str | None
    item_titles: tuple[str, ...]
    currency: str


async def lock_cases(conn: Connection, case_ids: Sequence[str]) -> dict[str, Case]:
    """Read the cases and hold them until commit, so events, timers and replicas change a
    case one at a time (sorted, so two transactions cannot wait for each other).

    A case not stored yet needs no lock: its events share one partition (keyed by order), so
    two transactions that could both create it hold a common event, and the inbox claim of
    that event id makes the second wait for the first and then see the case.
    """
    rows = await conn.fetch(
        f"SELECT {', '.join(_CASE_COLUMNS)} FROM cases WHERE case_id = ANY($1::text[]) "
        "ORDER BY case_id FOR UPDATE",
        sorted(set(case_ids)),
    )
    return {r["case_id"]: _case(r) for r in rows}


def _case(row: asyncpg.Record) -> Case:
    return Case(
        case_id=row["case_id"],
        order_id=row["order_id"],
        stage=Stage(row["stage"]),
        stage_at=row["stage_at"],
        kind=AftersaleKind(row["kind"]) if row["kind"] else None,
        times={s: row[c] for s, c in _STAGE_COLUMNS.items() if row[c] is not None},
        event_ids={Stage(s): e for s, e in row["event_ids"].items()},
        **{c: row[c] for c in _DETAIL_COLUMNS},
    )


async def save_cases(conn: Connection, cases: Sequence[Case], now: datetime) -> None:
    if not cases:
        return
    columns = ", ".join(_CASE_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _CASE_COLUMNS[1:])
    # One statement for the batch; each row is an object keyed by column, typed by the table.
    await conn.execute(
        f"INSERT INTO cases ({columns}, updated_at) SELECT {columns}, $2 "
        "FROM jsonb_populate_recordset(NULL::cases, $1::text::jsonb) "
        f"ON CONFLICT (case_id) DO UPDATE SET {updates}, updated_at = EXCLUDED.updated_at",
        batch_rows(
            dict(zip(_CASE_COLUMNS, _case_values(case), strict=True))
            for case in sorted(cases, key=lambda c: c.case_id)
        ),
        now,
    )


def _case_values(case: Case) -> tuple[Any, ...]:
    return (
        case.case_id,
        case.order_id,
        case.kind.value if case.kind is not None else None,
        case.stage.value,
        case.stage.rank,
        case.stage_at,
        *(case.times.get(s) for s in _STAGE_COLUMNS),
        {s.value: e for s, e in case.event_ids.items()},
        *(getattr(case, c) for c in _DETAIL_COLUMNS),
    )


async def load_promises(
    conn: Connection, case_ids: Sequence[str]
) -> dict[str, dict[PromiseKind, Promise]]:
    rows = await conn.fetch(
        "SELECT case_id, promise, started_at, due_at, outcome, resolved_at FROM case_promises "
        "WHERE case_id = ANY($1::text[])",
        list(case_ids),
    )
    promises: dict[str, dict[PromiseKind, Promise]] = {}
    for r in rows:
        kind = PromiseKind(r["promise"])
        promises.setdefault(r["case_id"], {})[kind] = Promise(
            kind, r["started_at"], r["due_at"], PromiseOutcome(r["outcome"]), r["resolved_at"]
        )
    return promises


async def save_promises(conn: Connection, promises: Sequence[tuple[str, Promise]]) -> None:
    if not promises:
        return
    # The last change of a promise wins; one statement may not update a row twice.
    latest = {(case_id, p.kind): (case_id, p) for case_id, p in promises}
    await conn.execute(
        "INSERT INTO case_promises (case_id, promise, started_at, due_at, outcome, resolved_at) "
        "SELECT r->>0, r->>1, (r->>2)::timestamptz, (r->>3)::timestamptz, r->>4, "
        "(r->>5)::timestamptz FROM jsonb_array_elements($1::text::jsonb) AS r "
        "ON CONFLICT (case_id, promise) DO UPDATE SET "
        "started_at = EXCLUDED.started_at, due_at = EXCLUDED.due_at, "
        "outcome = EXCLUDED.outcome, resolved_at = EXCLUDED.resolved_at",
        batch_rows(
            (case_id, p.kind.value, p.started_at, p.due_at, p.outcome.value, p.resolved_at)
            for case_id, p in (latest[key] for key in sorted(latest))
        ),
    )


async def load_messages(
    conn: Connection, case_ids: Sequence[str]
) -> dict[str, dict[str, MessageRecord]]:
    rows = await conn.fetch(
        "SELECT case_id, name, decision, cancelled_at FROM case_messages "
        "WHERE case_id = ANY($1::text[])",
        list(case_ids),
    )
    messages: dict[str, dict[str, MessageRecord]] = {}
    for r in rows:
        messages.setdefault(r["case_id"], {})[r["name"]] = MessageRecord(
            r["name"], r["decision"] == "sent", r["cancelled_at"] is not None
        )
    return messages


async def record_messages(conn: Connection, rows: Sequence[MessageRow]) -> None:
    if not rows:
        return
    await conn.execute(
        "INSERT INTO case_messages (case_id, name, order_id, kind, decision, reason, "
        "idempotency_key, template, decided_at) "
        "SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7, (r->>8)::timestamptz "
        "FROM jsonb_array_elements($1::text::jsonb) AS r ON CONFLICT (case_id, name) DO NOTHING",
        batch_rows(map(_MESSAGE_ROW, rows)),
    )


async def mark_cancelled(
    conn: Connection, cancelled: Mapping[str, Sequence[str]], now: datetime
) -> dict[str, list[str]]:
    """Mark messages cancelled (case id -> names); returns their keys by order id."""
    pairs = [(case_id, name) for case_id, names in cancelled.items() for name in names]
    if not pairs:
        return {}
    rows = await conn.fetch(
        "UPDATE case_messages m SET cancelled_at = $3 "
        "FROM unnest($1::text[], $2::text[]) AS c(case_id, name) "
        "WHERE m.case_id = c.case_id AND m.name = c.name AND m.cancelled_at IS NULL "
        "AND m.idempotency_key IS NOT NULL "
        "RETURNING m.order_id, m.idempotency_key",
        [c for c, _ in pairs],
        [n for _, n in pairs],
        now,
    )
    keys: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: (r["order_id"], r["idempotency_key"])):
        keys.setdefault(r["order_id"], []).append(r["idempotency_key"])
    return keys


async def append_log(conn: Connection, entries: Sequence[LogEntry]) -> None:
    if not entries:
        return
    await conn.execute(
        "INSERT INTO case_log (case_id, order_id, at, what, detail) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])",
        [e.case_id for e in entries],
        [e.order_id for e in entries],
        [e.at for e in entries],
        [e.what for e in entries],
        [e.detail for e in entries],
    )


# --- order details ----------------------------------------------------------------------------


async def record_orders(conn: Connection, orders: Sequence[NewOrder], now: datetime) -> None:
    # One row per order: a batch may carry the same order twice (republished).
    latest = sorted({o.order_id: o for o in orders}.values(), key=lambda o: o.order_id)
    if not latest:
        return
    await conn.execute(
        """
        INSERT INTO orders (order_id, customer_id, customer_name, item_titles, currency,
                            updated_at)
        SELECT o, c, n, t::jsonb, cur, $6 FROM unnest($1::text[], $2::text[], $3::text[],
                                                    $4::text[], $5::text[]) AS x(o, c, n, t, cur)
        ON CONFLICT (order_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id, customer_name = EXCLUDED.customer_name,
            item_titles = EXCLUDED.item_titles, currency = EXCLUDED.currency,
            updated_at = EXCLUDED.updated_at
        """,
        [o.order_id for o in latest],
        [o.customer_id for o in latest],
        [o.customer_name for o in latest],
        [json_arg(list(o.item_titles)) for o in latest],
        [o.currency for o in latest],
        now,
    )


async def record_payments(
    conn: Connection, methods: Mapping[str, str | None], now: datetime
) -> None:
    """Remember how each order was paid (order id -> method); a payment may come first."""
    if not methods:
        return
    ordered = sorted(methods.items())
    await conn.execute(
        """
        INSERT INTO orders (order_id, paid_method, updated_at)
        SELECT o, m, $3 FROM unnest($1::text[], $2::text[]) AS x(o, m)
        ON CONFLICT (order_id) DO UPDATE SET
            paid_method = coalesce(EXCLUDED.paid_method, orders.paid_method),
            updated_at = EXCLUDED.updated_at
        """,
        [o for o, _ in ordered],
        [m for _, m in ordered],
        now,
    )


async def load_orders(conn: Connection, order_ids: Sequence[str]) -> dict[str, OrderFacts]:
    rows = await conn.fetch(
        "SELECT order_id, customer_name, item_titles, currency, paid_method FROM orders "
        "WHERE order_id = ANY($1::text[])",
        sorted(set(order_ids)),
    )
    return {
        r["order_id"]: OrderFacts(
            order_id=r["order_id"],
            customer_name=r["customer_name"],
            item_titles=tuple(r["item_titles"]),
            currency=r["currency"],
            paid_method=r["paid_method"],
        )
        for r in rows
    }


async def forget_orders(conn: Connection, updated_before: datetime) -> int:
    """Drop order details nobody will need: old, and no after-sales case refers to them."""
    result = await conn.execute(
        "DELETE FROM orders o WHERE o.updated_at < $1 "
        "AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.order_id = o.order_id)",
        updated_before,
    )
    return int(result.split()[-1])


# --- figures for the gauges -------------------------------------------------------------------


async def open_cases_by_stage(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT stage, count(*) AS n FROM cases "
        "WHERE stage IN ('requested', 'approved', 'return_shipped', 'return_received') "
        "GROUP BY stage"
    )
    return {r["stage"]: r["n"] for r in rows}


async def overdue_open_cases(conn: Connection) -> dict[str, int]:
    """Cases past a deadline that is still not met, by promise: what the shop owes now."""
    rows = await conn.fetch(
        "SELECT p.promise, count(*) AS n FROM case_promises p JOIN cases c USING (case_id) "
        "WHERE p.outcome = 'breached' AND ("
        " (p.promise = 'first_answer' AND c.stage = 'requested')"
        " OR (p.promise IN ('refund', 'replacement')"
        "     AND c.stage IN ('approved', 'return_shipped', 'return_received'))) "
        "GROUP BY p.promise"
    )
    return {r["promise"]: r["n"] for r in rows}

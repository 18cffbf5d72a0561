"""SQL of the logistics service. A batch is a handful of statements, each over the whole
batch: the rows of the hot paths as one JSON document (``batch_rows``), not typed arrays that
asyncpg encodes element by element (saving the scanned rows: 16 -> 9 us per scan).
``jsonb_array_elements`` is estimated at 100 rows, so the planner joins it to the table by
primary key, never by a sequential scan (EXPLAIN at 200,000 rows).

Lock order, so that concurrent transactions cannot deadlock: shipments before orders, each
sorted by id. The shipment consumer locks its shipments, then the orders whose dispatch it
learns; the order consumer locks the shipments of cancelled orders before the orders; the
payment consumer and the dispatch timer lock only orders; the shipment timer only shipments.
"""

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import asyncpg

from contracts.shop import TrackingStatus
from followup.db import Connection, batch_rows
from followup.values import value
from services.logistics.policy import Episode, Order, Rule, Shipment
from services.logistics.settings import Severity


@value
class ShipmentRow:
    shipment: Shipment
    episode: Episode
    check_at: datetime | None


@value
class OrderRow:
    order: Order
    episode: Episode
    check_at: datetime | None


@value
class NoticeLog:
    """One decision about a message, for `followup history` and staff."""

    order_id: str
    shipment_id: str | None
    episode: int
    stage: str
    kind: str | None
    template: str | None
    rule: str | None
    severity: str | None
    idempotency_key: str | None
    evidence: Mapping[str, Any]
    decided_at: datetime


# --- episodes as jsonb --------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def episode_to_json(episode: Episode) -> dict[str, Any]:
    return {
        "number": episode.number,
        "is_open": episode.is_open,
        "opened_at": _iso(episode.opened_at),
        "told": sorted(episode.told),
        "severity": episode.severity.value,
        "escalated": sorted(episode.escalated),
        "followups": episode.followups,
        "last_notice_at": _iso(episode.last_notice_at),
        "next_update_at": _iso(episode.next_update_at),
        "handed_over": episode.handed_over,
    }


def episode_from_json(data: Mapping[str, Any]) -> Episode:
    if not data:
        return Episode()
    return Episode(
        number=int(data["number"]),
        is_open=bool(data["is_open"]),
        opened_at=_time(data["opened_at"]),
        told=frozenset(Rule(r) for r in data["told"]),
        severity=Severity(data["severity"]),
        escalated=frozenset(Rule(r) for r in data["escalated"]),
        followups=int(data["followups"]),
        last_notice_at=_time(data["last_notice_at"]),
        next_update_at=_time(data["next_update_at"]),
        handed_over=bool(data["handed_over"]),
    )


# --- shipments ----------------------------------------------------------------------------

# In the order of the Shipment fields, so a row becomes a Shipment without lookups by name
# (this runs for every scan); empty JSON comes back as null and is never parsed.
_SHIPMENT_COLUMNS = (
    "shipment_id, order_id, carrier, tracking_number, service_level, destination_city, "
    "dispatched_at, promised_delivery, revised_delivery, revised_at, last_scan_at, "
    "last_status, last_location, nullif(failed_attempts, '[]'::jsonb), delivered_at, "
    "returned_at, pickup_notified, order_ended_at, last_progress_at, source_event_id, "
    "source_event_time, nullif(episode, '{}'::jsonb), check_at"
)
_STATUS, _FAILED, _EPISODE, _CHECK_AT = 11, 13, 21, 22
_NO_EPISODE = Episode()
# A lookup, not the enum's own call (about 1 us): this runs for every row read.
_TRACKING_STATUS = {status.value: status for status in TrackingStatus}
# What an ordinary scan changes; a row where nothing else changed is saved with these only.
_SCAN_FIELDS = (
    "last_scan_at",
    "last_status",
    "last_location",
    "source_event_id",
    "source_event_time",
)
_ALL_FIELDS = attrgetter(*(f.name for f in fields(Shipment)))
_OTHER_FIELDS = attrgetter(*(f.name for f in fields(Shipment) if f.name not in _SCAN_FIELDS))
# Shipments named by the first element of each ``batch_rows`` row, locked in id order.
_LOCK_SHIPMENTS = (
    f"SELECT {_SHIPMENT_COLUMNS} FROM shipments WHERE shipment_id IN "
    "(SELECT r->>0 FROM jsonb_array_elements($1::text::jsonb) AS r) "
    "ORDER BY shipment_id FOR UPDATE"
)


def _shipment_row(r: asyncpg.Record) -> ShipmentRow:
    values = list(r.values())
    if values[_STATUS] is not None:
        values[_STATUS] = _TRACKING_STATUS[values[_STATUS]]
    failed = values[_FAILED]
    values[_FAILED] = tuple(map(datetime.fromisoformat, failed)) if failed else ()
    episode = values[_EPISODE]
    return ShipmentRow(
        Shipment(*values[:_EPISODE]),
        episode_from_json(episode) if episode else _NO_EPISODE,
        values[_CHECK_AT],
    )


async def lock_shipments(
    conn: Connection, orders_by_shipment: Mapping[str, str]
) -> dict[str, ShipmentRow]:
    """The shipments (created empty if new), locked until commit."""
    ids = sorted(orders_by_shipment)
    rows = await conn.fetch(_LOCK_SHIPMENTS, batch_rows((i,) for i in ids))
    found = {r["shipment_id"]: _shipment_row(r) for r in rows}
    missing = [(i, orders_by_shipment[i]) for i in ids if i not in found]
    if missing:
        # A new shipment: insert it, or (if a concurrent batch just did) wait for it and read.
        new = batch_rows(missing)
        await conn.execute(
            "INSERT INTO shipments (shipment_id, order_id) SELECT r->>0, r->>1 "
            "FROM jsonb_array_elements($1::text::jsonb) AS r ON CONFLICT DO NOTHING",
            new,
        )
        rows = await conn.fetch(_LOCK_SHIPMENTS, new)
        found |= {r["shipment_id"]: _shipment_row(r) for r in rows}
    return found


async def lock_shipments_of_orders(
    conn: Connection, order_ids: Sequence[str]
) -> dict[str, ShipmentRow]:
    rows = await conn.fetch(
        f"SELECT {_SHIPMENT_COLUMNS} FROM shipments WHERE order_id = ANY($1::text[]) "
        "ORDER BY shipment_id FOR UPDATE",
        sorted(set(order_ids)),
    )
    return {r["shipment_id"]: _shipment_row(r) for r in rows}


async def save_shipments(
    conn: Connection, rows: Sequence[ShipmentRow], before: Mapping[str, ShipmentRow]
) -> None:
    """Write what changed since ``before``: most rows only moved on by a scan, and those are
    written with the few columns a scan changes."""
    scanned: list[ShipmentRow] = []
    changed: list[ShipmentRow] = []
    for row in rows:
        old = before.get(row.shipment.shipment_id)
        if (
            old is None
            or (old.episode is not row.episode and old.episode != row.episode)
            or old.check_at != row.check_at
            or _OTHER_FIELDS(old.shipment) != _OTHER_FIELDS(row.shipment)
        ):
            changed.append(row)
        elif old.shipment != row.shipment:
            scanned.append(row)
    if scanned:
        await conn.execute(
            """
            UPDATE shipments AS t SET
                last_scan_at = (r->>1)::timestamptz, last_status = r->>2,
                last_location = r->>3, source_event_id = r->>4,
                source_event_time = (r->>5)::timestamptz, updated_at = now()
            FROM jsonb_array_elements($1::text::jsonb) AS r
            WHERE t.shipment_id = r->>0
            """,
            batch_rows(
                (
                    s.shipment_id,
                    s.last_scan_at,
                    s.last_status,
                    s.last_location,
                    s.source_event_id,
                    s.source_event_time,
                )
                for s in (r.shipment for r in scanned)
            ),
        )
    if changed:
        await _save_whole_shipments(conn, changed)


async def _save_whole_shipments(conn: Connection, rows: Sequence[ShipmentRow]) -> None:
    await conn.execute(
        """
        UPDATE shipments AS t SET
            order_id = r->>1, carrier = r->>2, tracking_number = r->>3,
            service_level = r->>4, destination_city = r->>5,
            dispatched_at = (r->>6)::timestamptz, promised_delivery = r->>7,
            revised_delivery = r->>8, revised_at = (r->>9)::timestamptz,
            last_scan_at = (r->>10)::timestamptz, last_status = r->>11,
            last_location = r->>12, failed_attempts = r->13,
            delivered_at = (r->>14)::timestamptz, returned_at = (r->>15)::timestamptz,
            pickup_notified = (r->>16)::boolean, order_ended_at = (r->>17)::timestamptz,
            last_progress_at = (r->>18)::timestamptz, source_event_id = r->>19,
            source_event_time = (r->>20)::timestamptz, episode = r->21,
            check_at = (r->>22)::timestamptz, updated_at = now()
        FROM jsonb_array_elements($1::text::jsonb) AS r
        WHERE t.shipment_id = r->>0
        """,
        batch_rows(
            (
                *_ALL_FIELDS(r.shipment),
                # A shipment that never had a problem keeps '{}', read back without parsing.
                episode_to_json(r.episode) if r.episode != _NO_EPISODE else {},
                r.check_at,
            )
            for r in rows
        ),
    )


# --- orders -------------------------------------------------------------------------------

_ORDER_COLUMNS = (
    "order_id, shop_id, customer_id, item_title, item_count, paid_at, ended_at, ended_reason, "
    "dispatched_at, source_event_id, source_event_time, episode, check_at"
)
_ORDER_FIELDS = attrgetter(*(f.name for f in fields(Order)))


def _order_row(r: asyncpg.Record) -> OrderRow:
    order = Order(
        order_id=r["order_id"],
        shop_id=r["shop_id"],
        customer_id=r["customer_id"],
        item_title=r["item_title"],
        item_count=r["item_count"],
        paid_at=r["paid_at"],
        ended_at=r["ended_at"],
        ended_reason=r["ended_reason"],
        dispatched_at=r["dispatched_at"],
        source_event_id=r["source_event_id"],
        source_event_time=r["source_event_time"],
    )
    return OrderRow(order, episode_from_json(r["episode"]), r["check_at"])


async def lock_orders(conn: Connection, order_ids: Sequence[str]) -> dict[str, OrderRow]:
    """The orders (created empty if new), locked until commit."""
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    batch = batch_rows((i,) for i in ids)
    await conn.execute(
        "INSERT INTO orders (order_id) SELECT r->>0 FROM jsonb_array_elements($1::text::jsonb) "
        "AS r ON CONFLICT DO NOTHING",
        batch,
    )
    rows = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id IN "
        "(SELECT r->>0 FROM jsonb_array_elements($1::text::jsonb) AS r) "
        "ORDER BY order_id FOR UPDATE",
        batch,
    )
    return {r["order_id"]: _order_row(r) for r in rows}


async def save_orders(conn: Connection, rows: Sequence[OrderRow]) -> None:
    if not rows:
        return
    await conn.execute(
        """
        UPDATE orders AS t SET
            shop_id = r->>1, customer_id = r->>2, item_title = r->>3,
            item_count = (r->>4)::int, paid_at = (r->>5)::timestamptz,
            ended_at = (r->>6)::timestamptz, ended_reason = r->>7,
            dispatched_at = (r->>8)::timestamptz, source_event_id = r->>9,
            source_event_time = (r->>10)::timestamptz, episode = r->11,
            check_at = (r->>12)::timestamptz, updated_at = now()
        FROM jsonb_array_elements($1::text::jsonb) AS r
        WHERE t.order_id = r->>0
        """,
        batch_rows((*_ORDER_FIELDS(r.order), episode_to_json(r.episode), r.check_at) for r in rows),
    )


async def items_of(conn: Connection, order_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """What each order contains (first item's title, units), where order.created was seen."""
    rows = await conn.fetch(
        "SELECT order_id, item_title, item_count FROM orders "
        "WHERE order_id = ANY($1::text[]) AND item_title IS NOT NULL",
        sorted(set(order_ids)),
    )
    return {r["order_id"]: (r["item_title"], r["item_count"]) for r in rows}


# --- the decision log and the dashboard ---------------------------------------------------


async def record_notices(conn: Connection, notices: Sequence[NoticeLog]) -> None:
    if not notices:
        return
    await conn.execute(
        "INSERT INTO notices (order_id, shipment_id, episode, stage, kind, template, rule, "
        "severity, idempotency_key, evidence, decided_at) "
        "SELECT r->>0, r->>1, (r->>2)::int, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8, r->9, "
        "(r->>10)::timestamptz FROM jsonb_array_elements($1::text::jsonb) AS r",
        batch_rows(
            (
                n.order_id,
                n.shipment_id,
                n.episode,
                n.stage,
                n.kind,
                n.template,
                n.rule,
                n.severity,
                n.idempotency_key,
                dict(n.evidence),
                n.decided_at,
            )
            for n in notices
        ),
    )


async def open_episodes(conn: Connection) -> list[tuple[str, str, int]]:
    """(subject, severity, count) of open episodes, from the partial indexes."""
    rows = await conn.fetch(
        "SELECT 'shipment' AS subject, episode ->> 'severity' AS severity, count(*) AS n "
        "FROM shipments WHERE (episode ->> 'is_open') = 'true' GROUP BY 2 "
        "UNION ALL "
        "SELECT 'dispatch', episode ->> 'severity', count(*) "
        "FROM orders WHERE (episode ->> 'is_open') = 'true' GROUP BY 2"
    )
    return [(r["subject"], r["severity"], r["n"]) for r in rows]

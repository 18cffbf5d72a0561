"""SQL of the logistics service. A batch is a handful of statements, each over arrays.

Lock order, so that concurrent transactions cannot deadlock: shipments before orders, each
sorted by id. The shipment consumer locks its shipments, then the orders whose dispatch it
learns; the order consumer locks the shipments of cancelled orders before the orders; the
payment consumer and the dispatch timer lock only orders; the shipment timer only shipments.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import asyncpg

from contracts.shop import TrackingStatus
from followup.db import Connection, json_arg
from services.logistics.policy import Episode, Order, Rule, Shipment
from services.logistics.settings import Severity


@dataclass(frozen=True)
class ShipmentRow:
    shipment: Shipment
    episode: Episode
    check_at: datetime | None


@dataclass(frozen=True)
class OrderRow:
    order: Order
    episode: Episode
    check_at: datetime | None


@dataclass(frozen=True)
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
# What an ordinary scan changes; a row where nothing else changed is saved with these only.
_SCAN_FIELDS = (
    "last_scan_at",
    "last_status",
    "last_location",
    "source_event_id",
    "source_event_time",
)
_OTHER_FIELDS = attrgetter(*(f.name for f in fields(Shipment) if f.name not in _SCAN_FIELDS))


def _shipment_row(r: asyncpg.Record) -> ShipmentRow:
    values = list(r.values())
    if values[_STATUS] is not None:
        values[_STATUS] = TrackingStatus(values[_STATUS])
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
    rows = await conn.fetch(
        f"SELECT {_SHIPMENT_COLUMNS} FROM shipments WHERE shipment_id = ANY($1::text[]) "
        "ORDER BY shipment_id FOR UPDATE",
        ids,
    )
    found = {r["shipment_id"]: _shipment_row(r) for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        # A new shipment: insert it, or (if a concurrent batch just did) wait for it and read.
        await conn.execute(
            "INSERT INTO shipments (shipment_id, order_id) "
            "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            missing,
            [orders_by_shipment[i] for i in missing],
        )
        rows = await conn.fetch(
            f"SELECT {_SHIPMENT_COLUMNS} FROM shipments WHERE shipment_id = ANY($1::text[]) "
            "ORDER BY shipment_id FOR UPDATE",
            missing,
        )
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
            or old.episode != row.episode
            or old.check_at != row.check_at
            or _OTHER_FIELDS(old.shipment) != _OTHER_FIELDS(row.shipment)
        ):
            changed.append(row)
        elif old.shipment != row.shipment:
            scanned.append(row)
    if scanned:
        s = [r.shipment for r in scanned]
        await conn.execute(
            """
            UPDATE shipments AS t SET
                last_scan_at = u.last_scan_at, last_status = u.last_status,
                last_location = u.last_location, source_event_id = u.source_event_id,
                source_event_time = u.source_event_time, updated_at = now()
            FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                        $6::timestamptz[])
                AS u(shipment_id, last_scan_at, last_status, last_location, source_event_id,
                     source_event_time)
            -- ANY() as well, so rows are found by the primary key, never by a scan.
            WHERE t.shipment_id = ANY($1::text[]) AND t.shipment_id = u.shipment_id
            """,
            [x.shipment_id for x in s],
            [x.last_scan_at for x in s],
            [x.last_status.value if x.last_status else None for x in s],
            [x.last_location for x in s],
            [x.source_event_id for x in s],
            [x.source_event_time for x in s],
        )
    if changed:
        await _save_whole_shipments(conn, changed)


async def _save_whole_shipments(conn: Connection, rows: Sequence[ShipmentRow]) -> None:
    s = [r.shipment for r in rows]
    await conn.execute(
        """
        UPDATE shipments AS t SET
            order_id = u.order_id, carrier = u.carrier, tracking_number = u.tracking_number,
            service_level = u.service_level, destination_city = u.destination_city,
            dispatched_at = u.dispatched_at, promised_delivery = u.promised_delivery,
            revised_delivery = u.revised_delivery, revised_at = u.revised_at,
            last_scan_at = u.last_scan_at, last_status = u.last_status,
            last_location = u.last_location, failed_attempts = u.failed_attempts::jsonb,
            delivered_at = u.delivered_at, returned_at = u.returned_at,
            pickup_notified = u.pickup_notified, order_ended_at = u.order_ended_at,
            last_progress_at = u.last_progress_at, source_event_id = u.source_event_id,
            source_event_time = u.source_event_time, episode = u.episode::jsonb,
            check_at = u.check_at, updated_at = now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::timestamptz[], $8::text[], $9::text[], $10::timestamptz[],
                    $11::timestamptz[], $12::text[], $13::text[], $14::text[],
                    $15::timestamptz[], $16::timestamptz[], $17::boolean[], $18::timestamptz[],
                    $19::timestamptz[], $20::text[], $21::timestamptz[], $22::text[],
                    $23::timestamptz[])
            AS u(shipment_id, order_id, carrier, tracking_number, service_level,
                 destination_city, dispatched_at, promised_delivery, revised_delivery,
                 revised_at, last_scan_at, last_status, last_location, failed_attempts,
                 delivered_at, returned_at, pickup_notified, order_ended_at, last_progress_at,
                 source_event_id, source_event_time, episode, check_at)
        WHERE t.shipment_id = ANY($1::text[]) AND t.shipment_id = u.shipment_id
        """,
        [x.shipment_id for x in s],
        [x.order_id for x in s],
        [x.carrier for x in s],
        [x.tracking_number for x in s],
        [x.service_level for x in s],
        [x.destination_city for x in s],
        [x.dispatched_at for x in s],
        [x.promised_delivery for x in s],
        [x.revised_delivery for x in s],
        [x.revised_at for x in s],
        [x.last_scan_at for x in s],
        [x.last_status.value if x.last_status else None for x in s],
        [x.last_location for x in s],
        # Text, not jsonb[]: asyncpg would read a list of lists as a 2-D array.
        [json_arg([t.isoformat() for t in x.failed_attempts]) for x in s],
        [x.delivered_at for x in s],
        [x.returned_at for x in s],
        [x.pickup_notified for x in s],
        [x.order_ended_at for x in s],
        [x.last_progress_at for x in s],
        [x.source_event_id for x in s],
        [x.source_event_time for x in s],
        # A shipment that never had a problem keeps '{}', which is read back without parsing.
        [json_arg(episode_to_json(r.episode)) if r.episode != _NO_EPISODE else "{}" for r in rows],
        [r.check_at for r in rows],
    )


# --- orders -------------------------------------------------------------------------------

_ORDER_COLUMNS = (
    "order_id, shop_id, customer_id, item_title, item_count, paid_at, ended_at, ended_reason, "
    "dispatched_at, source_event_id, source_event_time, episode, check_at"
)


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
    await conn.execute(
        "INSERT INTO orders (order_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", ids
    )
    rows = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ANY($1::text[]) "
        "ORDER BY order_id FOR UPDATE",
        ids,
    )
    return {r["order_id"]: _order_row(r) for r in rows}


async def save_orders(conn: Connection, rows: Sequence[OrderRow]) -> None:
    if not rows:
        return
    o = [r.order for r in rows]
    await conn.execute(
        """
        UPDATE orders AS t SET
            shop_id = u.shop_id, customer_id = u.customer_id, item_title = u.item_title,
            item_count = u.item_count,
            paid_at = u.paid_at, ended_at = u.ended_at,
            ended_reason = u.ended_reason, dispatched_at = u.dispatched_at,
            source_event_id = u.source_event_id, source_event_time = u.source_event_time,
            episode = u.episode, check_at = u.check_at, updated_at = now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                    $6::timestamptz[], $7::timestamptz[], $8::text[], $9::timestamptz[],
                    $10::text[], $11::timestamptz[], $12::jsonb[], $13::timestamptz[])
            AS u(order_id, shop_id, customer_id, item_title, item_count, paid_at, ended_at,
                 ended_reason, dispatched_at, source_event_id, source_event_time, episode,
                 check_at)
        WHERE t.order_id = ANY($1::text[]) AND t.order_id = u.order_id
        """,
        [x.order_id for x in o],
        [x.shop_id for x in o],
        [x.customer_id for x in o],
        [x.item_title for x in o],
        [x.item_count for x in o],
        [x.paid_at for x in o],
        [x.ended_at for x in o],
        [x.ended_reason for x in o],
        [x.dispatched_at for x in o],
        [x.source_event_id for x in o],
        [x.source_event_time for x in o],
        [episode_to_json(r.episode) for r in rows],
        [r.check_at for r in rows],
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
        "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], "
        "$6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::timestamptz[])",
        [n.order_id for n in notices],
        [n.shipment_id for n in notices],
        [n.episode for n in notices],
        [n.stage for n in notices],
        [n.kind for n in notices],
        [n.template for n in notices],
        [n.rule for n in notices],
        [n.severity for n in notices],
        [n.idempotency_key for n in notices],
        [dict(n.evidence) for n in notices],
        [n.decided_at for n in notices],
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

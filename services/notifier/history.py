"""Every message of an order or a customer: queued, held, deferred, merged, each provider
call, and how it ended; plus the customer's opt-outs (domain-notes.md §4: what was sent,
when and why)."""

from followup.db import Connection
from followup.history import HistoryEntry

SERVICE = "notifier"


async def history(
    conn: Connection, *, order_id: str | None, customer_id: str | None
) -> list[HistoryEntry]:
    deliveries = await conn.fetch(
        "SELECT message_id, idempotency_key, kind, template, order_id, priority, message_class, "
        "accepted_at, status, reason, channel, provider, attempts, finished_at "
        "FROM deliveries WHERE ($1::text IS NULL OR order_id = $1) "
        "AND ($2::text IS NULL OR customer_id = $2) ORDER BY accepted_at, message_id",
        order_id,
        customer_id,
    )
    ids = [d["message_id"] for d in deliveries]
    about = {d["message_id"]: d for d in deliveries}
    entries = [
        HistoryEntry(
            at=d["accepted_at"],
            service=SERVICE,
            order_id=d["order_id"],
            what=f"{d['kind']} queued",
            detail=f"{d['idempotency_key']}, template {d['template']}, {d['priority']} "
            f"priority, {d['message_class']}",
        )
        for d in deliveries
    ]
    for e in await conn.fetch(
        "SELECT message_id, at, event, detail FROM delivery_events "
        "WHERE message_id = ANY($1::uuid[]) ORDER BY id",
        ids,
    ):
        d = about[e["message_id"]]
        entries.append(
            HistoryEntry(e["at"], SERVICE, d["order_id"], f"{d['kind']} {e['event']}", e["detail"])
        )
    for a in await conn.fetch(
        "SELECT message_id, attempt, channel, provider, outcome, detail, started_at, duration_ms "
        "FROM delivery_attempts WHERE message_id = ANY($1::uuid[]) ORDER BY id",
        ids,
    ):
        d = about[a["message_id"]]
        entries.append(
            HistoryEntry(
                a["started_at"],
                SERVICE,
                d["order_id"],
                f"{d['kind']} attempt {a['attempt']} via {a['channel']}/{a['provider']}: "
                f"{a['outcome']}",
                f"{a['detail']}, {a['duration_ms']:.0f} ms",
            )
        )
    for d in deliveries:
        if d["finished_at"] is not None:
            via = f" via {d['channel']}/{d['provider']}" if d["status"] == "sent" else ""
            entries.append(
                HistoryEntry(
                    d["finished_at"],
                    SERVICE,
                    d["order_id"],
                    f"{d['kind']} {d['status']}{via}",
                    d["reason"] or f"{d['attempts']} attempt(s)",
                )
            )
    if customer_id is not None:
        for o in await conn.fetch(
            "SELECT channel, message_class, source, at FROM opt_outs WHERE customer_id = $1",
            customer_id,
        ):
            channel = "every channel" if o["channel"] == "*" else o["channel"]
            kind = "all" if o["message_class"] == "*" else o["message_class"]
            entries.append(
                HistoryEntry(
                    o["at"],
                    SERVICE,
                    None,
                    f"opted out of {kind} messages on {channel}",
                    o["source"],
                )
            )
    return sorted(entries, key=lambda e: e.at)

"""Duplicate detection by CloudEvents id, inside the transaction that records the effect."""

import json
from collections.abc import Sequence

from followup.db import Connection


async def claim_new_event_ids(conn: Connection, event_ids: Sequence[str]) -> set[str]:
    """Record the ids and return those never seen before. A concurrent transaction holding the
    same id makes this wait for it; if it commits, the id is not returned here."""
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id) SELECT jsonb_array_elements_text($1::text::jsonb) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        json.dumps(list(dict.fromkeys(event_ids))),
    )
    return {r["event_id"] for r in rows}


async def purge_inbox(conn: Connection, retention_days: int) -> int:
    """Forget ids older than the retention; Kafka retention is shorter, so they cannot recur."""
    result = await conn.execute(
        "DELETE FROM inbox WHERE received_at < now() - make_interval(days => $1)", retention_days
    )
    return int(result.split()[-1])

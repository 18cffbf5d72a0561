"""Per-order and per-customer history across services (domain-notes.md §4: shops review what
was sent, when and why, and staff must not repeat or contradict it).

Each service that has something to say provides ``services/<name>/history.py`` with
``async def history(conn, *, order_id, customer_id) -> list[HistoryEntry]``; the connection's
search path is that service's schema.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    service: str
    order_id: str | None
    what: str
    """Short, e.g. ``reminder tier 1 sent`` or ``message delivered``."""
    detail: str = ""
    """Why: the reason, rule, channel or evidence."""

"""Structured logs: one JSON object per line, the event id on every handler line, PII masked."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from followup.pii import scrub

_event_id: ContextVar[str | None] = ContextVar("event_id", default=None)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Values under these keys are personal data as a whole and never reach the log.
_PERSONAL_KEYS = frozenset({"phone", "email", "address", "shipping_address", "street", "name"})


@contextmanager
def event_context(event_id: str) -> Iterator[None]:
    """Every log line written inside carries ``event_id``."""
    token = _event_id.set(event_id)
    try:
        yield
    finally:
        _event_id.reset(token)


def _clean(key: str, value: Any) -> Any:
    if key in _PERSONAL_KEYS and value is not None:
        return "[hidden]"
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(key, v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        event_id = getattr(record, "event_id", None) or _event_id.get()
        if event_id:
            entry["event_id"] = event_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = _clean(key, value)
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For people at a terminal (``followup up``): short lines, same masking."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service:<10} %(levelname)-7s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        event_id = getattr(record, "event_id", None) or _event_id.get()
        return scrub(f"{line} [event {event_id}]" if event_id else line)


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka reports every retried heartbeat at INFO; those belong in debug output.
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.WARNING))

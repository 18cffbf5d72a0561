"""Policy durations: seconds, or a number with s/m/h/d, so a demo can run a day in a minute."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[dhms]\s*)+$", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
HINT = "use seconds (900) or a number with a unit: '90s', '15m', '3h', '2d', '1h30m'"


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}; {HINT}")  # noqa: TRY004
    elif isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.match(value):
        seconds = sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in _PART.findall(value))
    else:
        raise ValueError(f"invalid duration {value!r}; {HINT}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling, e.g. ``1h30m``; used when settings are printed."""
    remaining = value.total_seconds()
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if remaining:
        parts.append(f"{remaining:g}s")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
            "description": "Seconds, or a number with a unit (s, m, h, d), e.g. '15m'.",
        }
    ),
]

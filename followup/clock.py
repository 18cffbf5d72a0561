"""Time is injected: services read it from a clock, tests move it forward instantly."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever time jumps (never for a clock that runs by itself)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def on_change(self, callback: Callable[[], None]) -> None:
        """Wall-clock time never jumps; loops wake on their own poll interval."""


class ManualClock:
    """A clock that only moves when told to; loops waiting on it wake at once."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start
        self._callbacks: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._now

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self._now + delta)

    def set(self, when: datetime) -> datetime:
        self._now = when
        for callback in self._callbacks:
            callback()
        return self._now

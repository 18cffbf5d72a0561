"""A circuit breaker per provider: stop calling a provider that keeps failing, so messages go
to the secondary provider or the next channel at once instead of waiting on timeouts.

State lives in the process: each replica learns a provider's health from its own calls, which
is enough to fail over quickly and needs no shared state on the hot path.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failures_to_open: int
    cooldown: timedelta
    failures: int = 0
    opened_at: datetime | None = None
    trial_in_flight: bool = False

    def state(self, now: datetime) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if now - self.opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allows(self, now: datetime) -> bool:
        """May a call go to the provider now? After the cooldown exactly one trial call goes
        through; its result closes the circuit again or restarts the cooldown."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_in_flight = False

    def failed(self, now: datetime) -> None:
        self.failures += 1
        if self.trial_in_flight or self.failures >= self.failures_to_open:
            self.opened_at = now
        self.trial_in_flight = False

"""Sending one message over its planned channels: in order, each through its primary provider
and, when that fails or its circuit is open, its secondary; the first delivery wins.

A refusal (permanent error) ends the channel for this message: its other provider would
refuse the same request. A temporary failure moves on to the next provider or channel now,
and if nothing delivered the message is tried again later.
"""

import time
from collections.abc import Sequence
from dataclasses import field
from datetime import datetime

from followup.clock import Clock
from followup.values import value
from services.notifier.breaker import BreakerState, CircuitBreaker
from services.notifier.channels import Outcome, OutgoingMessage, Provider, SendResult
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import CircuitBreakerPolicy


@value
class AttemptRecord:
    channel: str
    provider: str
    outcome: str
    detail: str
    started_at: datetime
    duration_ms: float


@value
class RouteResult:
    outcome: Outcome
    channel: str | None
    provider: str | None
    detail: str
    attempts: Sequence[AttemptRecord] = ()
    dead_channels: Sequence[str] = field(default_factory=tuple)
    first_call_at: datetime | None = None


class ChannelRouter:
    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        breaker: CircuitBreakerPolicy,
        clock: Clock,
        metrics: NotifierMetrics,
    ) -> None:
        self._providers: dict[str, list[Provider]] = {}
        for provider in providers:
            self._providers.setdefault(provider.channel, []).append(provider)
        self._breakers = {
            (p.channel, p.name): CircuitBreaker(breaker.failures, breaker.cooldown)
            for p in providers
        }
        self._clock = clock
        self._metrics = metrics

    @property
    def configured(self) -> frozenset[str]:
        return frozenset(self._providers)

    def breaker_states(self) -> dict[tuple[str, str], BreakerState]:
        now = self._clock.now()
        return {key: b.state(now) for key, b in self._breakers.items()}

    async def deliver(self, message: OutgoingMessage, channels: Sequence[str]) -> RouteResult:
        attempts: list[AttemptRecord] = []
        dead: list[str] = []
        refusals: list[str] = []
        temporary: str | None = None
        for channel in channels:
            for provider in self._providers.get(channel, []):
                breaker = self._breakers[(channel, provider.name)]
                if not breaker.allows(self._clock.now()):
                    temporary = temporary or f"circuit_open: {channel}/{provider.name}"
                    continue
                started_at = self._clock.now()
                started = time.perf_counter()
                result = await provider.send(message)
                elapsed = time.perf_counter() - started
                self._metrics.provider_latency.labels(channel, provider.name).observe(elapsed)
                attempts.append(
                    AttemptRecord(
                        channel,
                        provider.name,
                        result.outcome.value,
                        result.detail,
                        started_at,
                        elapsed * 1000,
                    )
                )
                self._observe(result, breaker)
                if result.outcome is Outcome.DELIVERED:
                    return RouteResult(
                        Outcome.DELIVERED,
                        channel,
                        provider.name,
                        result.detail,
                        attempts,
                        dead,
                        attempts[0].started_at,
                    )
                if result.outcome is Outcome.PERMANENT:
                    dead.append(channel)
                    refusals.append(f"{channel}/{provider.name}: {result.detail}")
                    break
                temporary = f"{channel}/{provider.name}: {result.detail}"
        first_call = attempts[0].started_at if attempts else None
        last = attempts[-1] if attempts else None
        if temporary is not None:
            return RouteResult(
                Outcome.RETRY,
                last.channel if last else None,
                last.provider if last else None,
                temporary,
                attempts,
                dead,
                first_call,
            )
        return RouteResult(
            Outcome.PERMANENT,
            last.channel if last else None,
            last.provider if last else None,
            "; ".join(refusals) or "no provider for " + ", ".join(channels),
            attempts,
            dead,
            first_call,
        )

    def _observe(self, result: SendResult, breaker: CircuitBreaker) -> None:
        # A refusal says the request was wrong, not that the provider is down.
        if result.outcome is Outcome.RETRY:
            breaker.failed(self._clock.now())
        else:
            breaker.succeeded()

from datetime import UTC, datetime, timedelta

from services.notifier.breaker import BreakerState, CircuitBreaker

T = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_opens_after_consecutive_failures_and_lets_one_trial_through_after_cooldown() -> None:
    breaker = CircuitBreaker(failures_to_open=3, cooldown=timedelta(seconds=30))
    for _ in range(2):
        assert breaker.allows(T)
        breaker.failed(T)
    breaker.succeeded()  # a success resets the count
    for _ in range(3):
        breaker.failed(T)
    assert breaker.state(T) is BreakerState.OPEN
    assert not breaker.allows(T + timedelta(seconds=29))
    later = T + timedelta(seconds=30)
    assert breaker.state(later) is BreakerState.HALF_OPEN
    assert breaker.allows(later)
    assert not breaker.allows(later)  # only one trial at a time
    breaker.succeeded()
    assert breaker.state(later) is BreakerState.CLOSED
    assert breaker.allows(later)


def test_a_failed_trial_restarts_the_cooldown() -> None:
    breaker = CircuitBreaker(failures_to_open=1, cooldown=timedelta(seconds=10))
    breaker.failed(T)
    trial = T + timedelta(seconds=10)
    assert breaker.allows(trial)
    breaker.failed(trial)
    assert breaker.state(trial + timedelta(seconds=9)) is BreakerState.OPEN
    assert breaker.allows(trial + timedelta(seconds=10))

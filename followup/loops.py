"""Background loops (timer claims, outbox relay, delivery workers) and how they wait."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from followup.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Awaitable[None]]

_FIRST_RESTART_DELAY_S = 0.5
_MAX_RESTART_DELAY_S = 30.0
# A loop that ran this long before it failed is not crash-looping: restart it quickly again.
_HEALTHY_RUN_S = 60.0


async def wait_for_any(stop: asyncio.Event, max_wait_s: float, *events: asyncio.Event) -> None:
    """Sleep up to ``max_wait_s``, returning early when ``stop`` or any of ``events`` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in (stop, *events)]
    try:
        await asyncio.wait(waiters, timeout=max_wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def supervise(name: str, loop: Loop, stop: asyncio.Event, metrics: RuntimeMetrics) -> None:
    """Run ``loop`` until ``stop``; restart it with backoff if it dies of an unexpected error,
    so one bad row cannot silently end timer firing or publishing for the whole process."""
    delay = _FIRST_RESTART_DELAY_S
    clock = asyncio.get_running_loop()
    while not stop.is_set():
        started = clock.time()
        try:
            await loop(stop)
        except Exception:
            if clock.time() - started > _HEALTHY_RUN_S:
                delay = _FIRST_RESTART_DELAY_S
            metrics.loop_restarts.labels(name).inc()
            log.exception("background loop %s failed; restarting in %.1fs", name, delay)
            await wait_for_any(stop, delay)
            delay = min(delay * 2, _MAX_RESTART_DELAY_S)
        else:
            return

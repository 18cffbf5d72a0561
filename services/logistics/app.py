"""Composition root of the logistics service.

Run with ``followup run logistics`` or
``faststream run --factory services.logistics.app:create_app``.
"""

import asyncio
import logging
from datetime import date
from pathlib import Path

import asyncpg
from faststream.asgi import AsgiFastStream

from followup.clock import Clock
from followup.loops import wait_for_any
from followup.service_app import ServiceRuntime
from followup.settings import load_policy, load_settings
from services.logistics import handlers, store
from services.logistics.metrics import LogisticsMetrics
from services.logistics.service import LogisticsService
from services.logistics.settings import LogisticsPolicy, LogisticsSettings
from services.logistics.working_days import WorkingCalendar

NAME = "logistics"
_DASHBOARD_INTERVAL_S = 15.0

log = logging.getLogger(__name__)


def create_app(
    settings: LogisticsSettings | None = None, *, clock: Clock | None = None
) -> AsgiFastStream:
    settings = settings or load_settings(LogisticsSettings)
    policy = load_policy(settings.policy_path(), NAME, LogisticsPolicy)
    runtime = ServiceRuntime(NAME, settings, service_dir=Path(__file__).parent, clock=clock)
    metrics = LogisticsMetrics(runtime.registry)
    dispatch = policy.dispatch
    calendar = WorkingCalendar(
        dispatch.calendar,
        extra_holidays=dispatch.extra_holidays,
        extra_workdays=dispatch.extra_workdays,
    )
    if dispatch.calendar == "cn":
        metrics.holiday_data_until.set(calendar.last_year)
    service = LogisticsService(policy, runtime.clock, metrics, calendar)
    handlers.register(runtime, service)

    async def calendar_check() -> None:
        """Say it loudly when the holiday data ends within a year: the library is updated
        after the State Council publishes the next year's holidays (usually in November)."""
        next_year = date(runtime.clock.now().year + 1, 1, 1)
        if dispatch.within is None and not calendar.covers(next_year):
            log.warning(
                "holiday calendar covers %d-%d: dispatch deadlines in %d and later count "
                "Monday to Friday until chinese-calendar is updated (or add "
                "[logistics.dispatch] extra_holidays / extra_workdays)",
                calendar.first_year,
                calendar.last_year,
                calendar.last_year + 1,
            )

    async def dashboard(stop: asyncio.Event) -> None:
        """Open episodes by colour, from partial indexes (no scan of all shipments)."""
        await calendar_check()
        while not stop.is_set():
            try:
                async with runtime.pool().acquire() as conn:
                    counts = await store.open_episodes(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("open episodes unavailable: %s", exc)
            else:
                metrics.open_episodes.clear()
                for subject, severity, count in counts:
                    metrics.open_episodes.labels(subject, severity).set(count)
            await wait_for_any(stop, _DASHBOARD_INTERVAL_S)

    runtime.add_loop("dashboard", dashboard)
    return runtime.app()

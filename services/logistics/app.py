"""Composition root of the logistics service.

Run with ``followup run logistics`` or
``faststream run --factory services.logistics.app:create_app``.
"""

from pathlib import Path

from faststream.asgi import AsgiFastStream

from followup.clock import Clock
from followup.service_app import ServiceRuntime
from followup.settings import load_policy, load_settings
from services.logistics import handlers
from services.logistics.service import LogisticsService
from services.logistics.settings import LogisticsPolicy, LogisticsSettings

NAME = "logistics"


def create_app(
    settings: LogisticsSettings | None = None, *, clock: Clock | None = None
) -> AsgiFastStream:
    settings = settings or load_settings(LogisticsSettings)
    load_policy(settings.policy_path(), NAME, LogisticsPolicy)
    runtime = ServiceRuntime(NAME, settings, service_dir=Path(__file__).parent, clock=clock)
    handlers.register(runtime, LogisticsService())
    return runtime.app()

"""Composition root of the reminder service.

Run with ``followup run reminder`` or
``faststream run --factory services.reminder.app:create_app``.
"""

from pathlib import Path

from faststream.asgi import AsgiFastStream

from followup.clock import Clock
from followup.service_app import ServiceRuntime
from followup.settings import load_policy, load_settings
from services.reminder import handlers
from services.reminder.metrics import ReminderMetrics
from services.reminder.service import ReminderService
from services.reminder.settings import ReminderPolicy, ReminderSettings

NAME = "reminder"


def create_app(
    settings: ReminderSettings | None = None, *, clock: Clock | None = None
) -> AsgiFastStream:
    settings = settings or load_settings(ReminderSettings)
    policy = load_policy(settings.policy_path(), NAME, ReminderPolicy)
    runtime = ServiceRuntime(NAME, settings, service_dir=Path(__file__).parent, clock=clock)
    service = ReminderService(policy, runtime.clock, ReminderMetrics(runtime.registry))
    handlers.register(runtime, service)
    return runtime.app()

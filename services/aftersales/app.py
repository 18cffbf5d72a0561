"""Composition root of the after-sales service.

Run with ``followup run aftersales`` or
``faststream run --factory services.aftersales.app:create_app``.
"""

from pathlib import Path

from faststream.asgi import AsgiFastStream

from followup.clock import Clock
from followup.service_app import ServiceRuntime
from followup.settings import load_policy, load_settings
from services.aftersales import handlers
from services.aftersales.metrics import AftersalesMetrics
from services.aftersales.service import AftersalesService, Bookkeeping
from services.aftersales.settings import AftersalesPolicy, AftersalesSettings

NAME = "aftersales"


def create_app(
    settings: AftersalesSettings | None = None, *, clock: Clock | None = None
) -> AsgiFastStream:
    settings = settings or load_settings(AftersalesSettings)
    policy = load_policy(settings.policy_path(), NAME, AftersalesPolicy)
    runtime = ServiceRuntime(NAME, settings, service_dir=Path(__file__).parent, clock=clock)
    metrics = AftersalesMetrics(runtime.registry)
    handlers.register(
        runtime,
        AftersalesService(policy, runtime.clock, metrics),
        Bookkeeping(runtime.pool, policy, runtime.clock, metrics),
    )
    return runtime.app()

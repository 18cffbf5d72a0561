"""Composition root of the notifier.

Run with ``followup run notifier`` or
``faststream run --factory services.notifier.app:create_app``.
"""

import asyncio
from pathlib import Path

import httpx
from faststream.asgi import AsgiFastStream

from followup.clock import Clock
from followup.service_app import ServiceRuntime
from followup.settings import ConfigError, load_policy, load_settings
from services.notifier import handlers
from services.notifier.channels import Channel
from services.notifier.channels.webhook import WebhookChannel
from services.notifier.metrics import NotifierMetrics
from services.notifier.service import NotifierService
from services.notifier.settings import NotifierPolicy, NotifierSettings
from services.notifier.templates import BUILTIN_TEMPLATES, TemplateCatalog

NAME = "notifier"


def create_app(
    settings: NotifierSettings | None = None, *, clock: Clock | None = None
) -> AsgiFastStream:
    settings = settings or load_settings(NotifierSettings)
    policy = load_policy(settings.policy_path(), NAME, NotifierPolicy)
    if settings.notifier_webhook_url is None and not settings.notifier_dry_run:
        raise ConfigError(
            "no delivery channel configured: set NOTIFIER_WEBHOOK_URL and "
            "NOTIFIER_WEBHOOK_SECRET, or NOTIFIER_DRY_RUN=true to only render and log"
        )
    directories = [d for d in (settings.notifier_templates_dir, BUILTIN_TEMPLATES) if d is not None]
    catalog = TemplateCatalog(directories, default_locale=policy.default_locale)
    runtime = ServiceRuntime(NAME, settings, service_dir=Path(__file__).parent, clock=clock)
    service = NotifierService(
        policy=policy,
        clock=runtime.clock,
        catalog=catalog,
        metrics=NotifierMetrics(runtime.registry),
        pool=runtime.pool,
        dry_run=settings.notifier_dry_run,
    )
    handlers.register(runtime, service)

    async def deliveries(stop: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=policy.concurrency)
        timeout = policy.request_timeout.total_seconds()
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            channels: list[Channel] = []
            if settings.notifier_webhook_url and settings.notifier_webhook_secret:
                secret = settings.notifier_webhook_secret.get_secret_value()
                channels.append(WebhookChannel(settings.notifier_webhook_url, secret, client))
            await service.run_worker(stop, channels)

    runtime.add_loop("deliveries", deliveries)
    return runtime.app()

"""Composition root of the notifier.

Run with ``followup run notifier`` or
``faststream run --factory services.notifier.app:create_app``.
"""

import hmac
import json
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Scope

from followup.clock import Clock
from followup.service_app import ServiceRuntime
from followup.settings import ConfigError, load_policy, load_settings
from services.notifier import handlers, store
from services.notifier.delivery import any_provider, deliver, notifier_service
from services.notifier.metrics import NotifierMetrics
from services.notifier.processes import DeliveryProcesses
from services.notifier.settings import NotifierPolicy, NotifierSettings

NAME = "notifier"


def create_app(
    settings: NotifierSettings | None = None, *, clock: Clock | None = None
) -> AsgiFastStream:
    settings = settings or load_settings(NotifierSettings)
    policy = load_policy(settings.policy_path(), NAME, NotifierPolicy)
    runtime = ServiceRuntime(NAME, settings, service_dir=Path(__file__).parent, clock=clock)
    metrics = NotifierMetrics(runtime.registry)
    # Checked before anything starts: a notifier that can reach nobody is a configuration
    # mistake, not a quiet mode.
    if not settings.notifier_dry_run and not any_provider(settings):
        raise ConfigError(
            "no delivery channel configured: set NOTIFIER_WEBHOOK_URL and "
            "NOTIFIER_WEBHOOK_SECRET (or an SMS, e-mail or chat-bot provider), or "
            "NOTIFIER_DRY_RUN=true to only render and log"
        )
    service = notifier_service(
        settings, policy, clock=runtime.clock, metrics=metrics, pool=runtime.pool
    )
    handlers.register(runtime, service)
    if policy.delivery_processes:
        if clock is not None:
            raise ConfigError(
                "notifier.delivery_processes: delivery processes keep the system clock; set "
                "it to 0 to deliver on the clock given to create_app()"
            )
        processes = DeliveryProcesses(NAME, settings, policy, runtime.metrics)
        runtime.add_loop("delivery_processes", processes.run)
        runtime.add_metrics_source(processes.collect)
    else:
        runtime.add_loop(
            "deliveries",
            partial(
                deliver,
                settings=settings,
                policy=policy,
                service=service,
                metrics=metrics,
                clock=runtime.clock,
            ),
        )
    routes = []
    if settings.notifier_api_token is not None:
        routes.append(preferences_route(settings.notifier_api_token.get_secret_value(), runtime))
    return runtime.app(routes)


def preferences_route(token: str, runtime: ServiceRuntime) -> tuple[str, ASGIApp]:
    """``GET /preferences?customer_id=C-1`` with ``Authorization: Bearer <token>``: the
    customer's opt-outs as JSON, for the platform's settings page."""

    @get(include_in_schema=False)
    async def preferences(scope: Scope) -> AsgiResponse:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if not hmac.compare_digest(headers.get("authorization", ""), f"Bearer {token}"):
            return _json({"error": "a valid bearer token is required"}, 401)
        query = parse_qs(scope.get("query_string", b"").decode())
        customer = (query.get("customer_id") or [""])[0]
        if not customer:
            return _json({"error": "customer_id is required"}, 400)
        async with runtime.pool().acquire() as conn:
            opt_outs = await store.opt_outs_of(conn, customer)
        return _json(
            {
                "customer_id": customer,
                "opt_outs": [
                    {
                        "channel": None if o.channel == "*" else o.channel,
                        "message_class": None if o.message_class == "*" else o.message_class,
                        "source": o.source,
                        "at": o.at.isoformat(),
                    }
                    for o in opt_outs
                ],
            },
            200,
        )

    return "/preferences", preferences


def _json(body: dict[str, Any], status: int) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(body, ensure_ascii=False).encode(), status, {"content-type": "application/json"}
    )

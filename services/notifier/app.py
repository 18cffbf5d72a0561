"""Composition root of the notifier.

Run with ``followup run notifier`` or
``faststream run --factory services.notifier.app:create_app``.
"""

import asyncio
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Scope

from followup.clock import Clock
from followup.service_app import ServiceRuntime
from followup.settings import ConfigError, load_policy, load_settings
from services.notifier import handlers, store
from services.notifier.channels import Provider
from services.notifier.channels.chatbots import DingTalkBot, FeishuBot, SlackBot, WeComBot
from services.notifier.channels.email import SmtpEmail
from services.notifier.channels.httpclient import HttpClient
from services.notifier.channels.sms import TwilioSms
from services.notifier.channels.webhook import WebhookProvider
from services.notifier.metrics import NotifierMetrics
from services.notifier.routing import ChannelRouter
from services.notifier.service import NotifierService
from services.notifier.settings import NotifierPolicy, NotifierSettings
from services.notifier.templates import BUILTIN_TEMPLATES, TemplateCatalog

NAME = "notifier"


def providers(
    settings: NotifierSettings, policy: NotifierPolicy, client: HttpClient, clock: Clock
) -> list[Provider]:
    """Every provider the environment configures, primary before secondary in each channel."""
    found: list[Provider] = []
    secret = settings.notifier_webhook_secret
    if settings.notifier_webhook_url and secret:
        found.append(
            WebhookProvider(settings.notifier_webhook_url, secret.get_secret_value(), client)
        )
        if settings.notifier_webhook_backup_url:
            found.append(
                WebhookProvider(
                    settings.notifier_webhook_backup_url,
                    secret.get_secret_value(),
                    client,
                    name="gateway_backup",
                )
            )
    for name, sid, token, sender, url in (
        (
            "twilio",
            settings.notifier_twilio_account_sid,
            settings.notifier_twilio_auth_token,
            settings.notifier_twilio_from,
            settings.notifier_twilio_api_url,
        ),
        (
            "twilio_backup",
            settings.notifier_twilio_backup_account_sid,
            settings.notifier_twilio_backup_auth_token,
            settings.notifier_twilio_backup_from,
            settings.notifier_twilio_backup_api_url,
        ),
    ):
        if sid and token and sender:
            found.append(
                TwilioSms(
                    account_sid=sid,
                    auth_token=token.get_secret_value(),
                    sender=sender,
                    client=client,
                    api_url=url,
                    name=name,
                )
            )
    sender = settings.notifier_email_from
    if sender:
        for name, smtp_url in (
            ("smtp", settings.notifier_smtp_url),
            ("smtp_backup", settings.notifier_smtp_backup_url),
        ):
            if smtp_url:
                found.append(SmtpEmail(smtp_url, sender, name=name))
    bots: dict[str, Provider] = {}
    if settings.notifier_dingtalk_url and settings.notifier_dingtalk_secret:
        bots["dingtalk"] = DingTalkBot(
            settings.notifier_dingtalk_url,
            settings.notifier_dingtalk_secret.get_secret_value(),
            client,
            clock.now,
        )
    if settings.notifier_wecom_url:
        bots["wecom"] = WeComBot(settings.notifier_wecom_url, client)
    if settings.notifier_feishu_url:
        feishu_secret = settings.notifier_feishu_secret
        bots["feishu"] = FeishuBot(
            settings.notifier_feishu_url,
            feishu_secret.get_secret_value() if feishu_secret else None,
            client,
            clock.now,
        )
    if settings.notifier_slack_url:
        bots["slack"] = SlackBot(settings.notifier_slack_url, client)
    # The ops channel has a primary and a secondary, like every channel: the first two
    # configured bots in the policy's order of preference.
    found += [bots[b] for b in policy.ops_bots if b in bots][:2]
    return found


def any_provider(settings: NotifierSettings) -> bool:
    return any(
        (
            settings.notifier_webhook_url,
            settings.notifier_twilio_account_sid,
            settings.notifier_smtp_url,
            settings.notifier_dingtalk_url,
            settings.notifier_wecom_url,
            settings.notifier_feishu_url,
            settings.notifier_slack_url,
        )
    )


def create_app(
    settings: NotifierSettings | None = None, *, clock: Clock | None = None
) -> AsgiFastStream:
    settings = settings or load_settings(NotifierSettings)
    policy = load_policy(settings.policy_path(), NAME, NotifierPolicy)
    directories = [d for d in (settings.notifier_templates_dir, BUILTIN_TEMPLATES) if d is not None]
    catalog = TemplateCatalog(directories, default_locale=policy.default_locale)
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
    service = NotifierService(
        policy=policy,
        clock=runtime.clock,
        catalog=catalog,
        metrics=metrics,
        pool=runtime.pool,
        dry_run=settings.notifier_dry_run,
        poll_interval_s=settings.timer_poll_interval_s,
    )
    handlers.register(runtime, service)

    async def deliveries(stop: asyncio.Event) -> None:
        # A few connections per host go further than many: each request finishes in about a
        # millisecond locally, and keep-alive reuse beats opening more sockets.
        client = HttpClient(timeout_s=policy.request_timeout.total_seconds())
        try:
            router = ChannelRouter(
                providers(settings, policy, client, runtime.clock),
                breaker=policy.circuit_breaker,
                clock=runtime.clock,
                metrics=metrics,
            )
            await service.run_worker(stop, router)
        finally:
            await client.close()

    runtime.add_loop("deliveries", deliveries)
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

"""What delivering needs, wherever it runs (the service's process or a delivery process):
the providers the environment configures, the service, and the delivery loop."""

import asyncio
from collections.abc import Callable

import asyncpg

from followup.clock import Clock
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


def notifier_service(
    settings: NotifierSettings,
    policy: NotifierPolicy,
    *,
    clock: Clock,
    metrics: NotifierMetrics,
    pool: Callable[[], asyncpg.Pool],
) -> NotifierService:
    directories = [d for d in (settings.notifier_templates_dir, BUILTIN_TEMPLATES) if d is not None]
    return NotifierService(
        policy=policy,
        clock=clock,
        catalog=TemplateCatalog(directories, default_locale=policy.default_locale),
        metrics=metrics,
        pool=pool,
        dry_run=settings.notifier_dry_run,
        poll_interval_s=settings.timer_poll_interval_s,
    )


async def deliver(
    stop: asyncio.Event,
    *,
    settings: NotifierSettings,
    policy: NotifierPolicy,
    service: NotifierService,
    metrics: NotifierMetrics,
    clock: Clock,
) -> None:
    """Send from the queue until ``stop``."""
    # A few connections per host go further than many: each request finishes in about a
    # millisecond locally, and keep-alive reuse beats opening more sockets.
    client = HttpClient(timeout_s=policy.request_timeout.total_seconds())
    try:
        router = ChannelRouter(
            providers(settings, policy, client, clock),
            breaker=policy.circuit_breaker,
            clock=clock,
            metrics=metrics,
        )
        await service.run_worker(stop, router)
    finally:
        await client.close()

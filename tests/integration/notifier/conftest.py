"""The notifier in this process on a manual clock, with the real broker and PostgreSQL and a
real server on loopback for every provider: the shop gateway (and its backup), Twilio, an
SMTP server, a DingTalk robot and a Slack webhook."""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from contracts.codec import encode, envelope
from contracts.notifications import (
    CancelNotification,
    CancelNotificationCommand,
    ContactPreference,
    ContactPreferenceCommand,
    MessageClass,
    NotificationKind,
    Priority,
    SendNotification,
    SendNotificationCommand,
)
from followup.clock import ManualClock
from followup.demo.receiver import ReceiverServer, WebhookReceiver
from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from tests.harness import Kafka, eventually, order_created, running, service_settings
from tests.integration.notifier.servers import (
    DingTalkStandIn,
    HttpServer,
    SlackStandIn,
    SmtpServer,
    TwilioStandIn,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # a Monday morning in Shanghai
SECRET = "test-secret-0123456789abcdef"
DINGTALK_SECRET = "SEC" + "5" * 61


@dataclass
class Providers:
    gateway: WebhookReceiver
    gateway_url: str
    gateway_backup: WebhookReceiver
    gateway_backup_url: str
    twilio: TwilioStandIn
    twilio_url: str
    dingtalk: DingTalkStandIn
    dingtalk_url: str
    slack: SlackStandIn
    slack_url: str
    smtp: SmtpServer
    smtp_url: str

    def environment(self) -> dict[str, Any]:
        return {
            "notifier_webhook_url": self.gateway_url,
            "notifier_webhook_secret": SECRET,
            "notifier_webhook_backup_url": self.gateway_backup_url,
            "notifier_twilio_account_sid": self.twilio.account_sid,
            "notifier_twilio_auth_token": self.twilio.auth_token,
            "notifier_twilio_from": "+15005550006",
            "notifier_twilio_api_url": self.twilio_url,
            "notifier_smtp_url": self.smtp_url,
            "notifier_email_from": "Shop Service <service@shop.example>",
            "notifier_dingtalk_url": f"{self.dingtalk_url}/robot/send?access_token=tok",
            "notifier_dingtalk_secret": DINGTALK_SECRET,
            "notifier_slack_url": f"{self.slack_url}/services/T000/B000/XXXX",
        }


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    gateway = WebhookReceiver(SECRET)
    backup = WebhookReceiver(SECRET)
    twilio = TwilioStandIn()
    dingtalk = DingTalkStandIn(secret=DINGTALK_SECRET)
    slack = SlackStandIn()
    smtp = SmtpServer()
    servers: list[ReceiverServer | HttpServer] = [
        ReceiverServer(gateway),
        ReceiverServer(backup),
        HttpServer(twilio),
        HttpServer(dingtalk),
        HttpServer(slack),
    ]
    urls = [await s.start() for s in servers]
    smtp_url = smtp.start()
    try:
        yield Providers(
            gateway,
            urls[0],
            backup,
            urls[1],
            twilio,
            urls[2],
            dingtalk,
            urls[3],
            slack,
            urls[4],
            smtp,
            smtp_url,
        )
    finally:
        smtp.stop()
        for server in servers:
            await server.stop()


@dataclass
class Notifier:
    kafka: Kafka
    clock: ManualClock
    db: asyncpg.Connection
    providers: Providers

    async def publish(self, event: Any, key: str | None) -> None:
        await self.kafka.publish("followup.notifications", encode(event), key=key)

    async def send(self, key: str, kind: NotificationKind, **fields: Any) -> SendNotification:
        defaults: dict[str, Any] = {
            "idempotency_key": key,
            "kind": kind,
            "message_class": MessageClass.TRANSACTIONAL,
            "priority": Priority.NORMAL,
            "variables": {"summary": "测试", "order_id": fields.get("order_id")},
        }
        command = SendNotification.model_validate({**defaults, **fields})
        await self.publish(
            envelope(SendNotificationCommand, command, source="test", time=self.clock.now()),
            command.customer_id or command.order_id,
        )
        return command

    async def cancel(self, **fields: Any) -> None:
        command = CancelNotification.model_validate(fields)
        await self.publish(
            envelope(CancelNotificationCommand, command, source="test", time=self.clock.now()),
            command.customer_id or command.order_id,
        )

    async def preference(self, **fields: Any) -> None:
        command = ContactPreference.model_validate(fields)
        await self.publish(
            envelope(
                ContactPreferenceCommand,
                command,
                source="shop-platform/test",
                time=self.clock.now(),
            ),
            command.customer_id,
        )

    async def order(self, order_id: str, customer_id: str, **customer: Any) -> None:
        event = order_created(
            order_id,
            at=self.clock.now(),
            deadline=self.clock.now().replace(year=2027),
            customer_id=customer_id,
            **customer,
        )
        await self.kafka.publish("shop.orders", event, key=order_id)

    async def row(self, key: str) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            "SELECT * FROM notifier.deliveries WHERE idempotency_key = $1", key
        )

    async def status(self, key: str) -> str | None:
        row = await self.row(key)
        return row["status"] if row else None

    async def until_status(
        self, key: str, *statuses: str, timeout_s: float = 20.0
    ) -> asyncpg.Record:
        await eventually(
            lambda: self.status(key),
            lambda s: s in statuses,
            what=f"{key} {statuses}",
            timeout_s=timeout_s,
        )
        row = await self.row(key)
        assert row is not None
        return row

    async def until_reason(self, key: str, reason_start: str) -> asyncpg.Record:
        async def reason() -> str:
            row = await self.row(key)
            return (row["reason"] or "") if row else ""

        await eventually(reason, lambda r: r.startswith(reason_start), what=f"{key} {reason_start}")
        row = await self.row(key)
        assert row is not None
        return row

    async def attempts(self, key: str) -> list[tuple[str, str, str]]:
        rows = await self.db.fetch(
            "SELECT a.channel, a.provider, a.outcome FROM notifier.delivery_attempts a "
            "JOIN notifier.deliveries d USING (message_id) WHERE d.idempotency_key = $1 "
            "ORDER BY a.id",
            key,
        )
        return [(r["channel"], r["provider"], r["outcome"]) for r in rows]

    async def events(self, key: str) -> list[tuple[str, str]]:
        rows = await self.db.fetch(
            "SELECT e.event, e.detail FROM notifier.delivery_events e "
            "JOIN notifier.deliveries d USING (message_id) WHERE d.idempotency_key = $1 "
            "ORDER BY e.id",
            key,
        )
        return [(r["event"], r["detail"]) for r in rows]

    async def statuses(self, expected: int) -> dict[str, dict[str, Any]]:
        """Status events by idempotency key (the last one of each)."""
        records = await self.kafka.read_all("followup.notification-status", expected=expected)
        by_key: dict[str, dict[str, Any]] = {}
        for record in records:
            event = json.loads(record.value)
            by_key[event["data"]["idempotency_key"]] = event
        return by_key

    async def recipient_known(self, customer_id: str) -> None:
        await eventually(
            lambda: self.db.fetchval(
                "SELECT count(*) FROM notifier.recipients WHERE customer_id = $1", customer_id
            ),
            lambda n: n == 1,
            what=f"recipient {customer_id}",
        )


# The shop's own template directory: simple texts for the kinds whose real templates belong
# to the services that send them, so these tests do not depend on their wording.
TEST_TEMPLATES = {
    "shipment_exception": (
        "包裹异常 {{ order_id }}",
        "很抱歉，订单 {{ order_id }} 的包裹出现异常，今天内给您回复。",
    ),
    "shipment_update": (
        "包裹动态 {{ order_id }}",
        "订单 {{ order_id }}：{{ note }}，可随时回复查询。",
    ),
    "order_confirmation": (
        "订单已确认 {{ order_id }}",
        "订单 {{ order_id }} 已付款，请核对地址，有误请直接回复。",
    ),
    "aftersale_progress": (
        "售后进度 {{ order_id }}",
        "订单 {{ order_id }} 的退款已受理，24小时内处理。",
    ),
}


def write_test_templates(directory: Path) -> None:
    (directory / "zh-CN").mkdir(parents=True, exist_ok=True)
    for name, (subject, text) in TEST_TEMPLATES.items():
        (directory / "zh-CN" / f"{name}.toml").write_text(
            f'subject = "{subject}"\ntext = "{text}"\nsms = "{text}"\n', encoding="utf-8"
        )


def _files(directory: Path, policy: str) -> tuple[Path, Path]:
    policy_file = directory / "followup.toml"
    policy_file.write_text(policy, encoding="utf-8")
    templates = directory / "shop-templates"
    write_test_templates(templates)
    return policy_file, templates


NotifierFactory = Callable[..., AbstractAsyncContextManager[Notifier]]


@pytest.fixture
def notifier(kafka: Kafka, database: str, providers: Providers, tmp_path: Path) -> NotifierFactory:
    """``async with notifier(policy_toml, **settings) as n``: a running notifier."""

    @asynccontextmanager
    async def start(policy: str = "", **overrides: Any) -> AsyncIterator[Notifier]:
        clock = ManualClock(T0)
        providers.dingtalk.now = clock.now
        policy_file, templates = _files(tmp_path, policy)
        settings = service_settings(
            NotifierSettings,
            kafka,
            database,
            followup_policy_file=policy_file,
            notifier_templates_dir=templates,
            **{**providers.environment(), **overrides},
        )
        app = create_app(settings, clock=clock)
        db = await asyncpg.connect(database)
        try:
            async with running(app):
                yield Notifier(kafka, clock, db, providers)
        finally:
            await db.close()

    return start

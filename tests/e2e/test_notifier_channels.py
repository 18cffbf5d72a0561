"""The notifier as an operator runs it (`followup run notifier`), fed with plain JSON by a plain
Kafka producer, delivering to real servers on loopback: the gateway, a Twilio stand-in that
checks authentication, an SMTP server and a Slack webhook."""

import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from followup.demo.receiver import ReceiverServer, WebhookReceiver
from tests.e2e.conftest import SECRET, ServiceProcess
from tests.harness import Kafka, cloud_event, eventually, order_created
from tests.integration.notifier.servers import HttpServer, SlackStandIn, SmtpServer, TwilioStandIn

pytestmark = pytest.mark.e2e

API_TOKEN = "api-token-0123456789abcdef"

POLICY = """
[notifier]
retry_base = "1s"
retry_max = "2s"

[notifier.routes]
shipment_exception = ["sms", "email"]
order_confirmation = ["email", "webhook"]
"""


def send_command(key: str, kind: str, **fields: Any) -> dict[str, Any]:
    """A command as another service's outbox writes it, in plain JSON."""
    return cloud_event(
        "followup.notification.send",
        {
            "idempotency_key": key,
            "kind": kind,
            "message_class": "transactional",
            "priority": "high",
            **fields,
        },
        time=datetime.now(UTC),
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
    )


@pytest.fixture
async def notifier_process(
    kafka: Kafka, database: str, tmp_path: Path
) -> AsyncIterator[tuple[ServiceProcess, dict[str, Any]]]:
    gateway = WebhookReceiver(SECRET)
    twilio, slack, smtp = TwilioStandIn(), SlackStandIn(), SmtpServer()
    servers: list[ReceiverServer | HttpServer] = [
        ReceiverServer(gateway),
        HttpServer(twilio),
        HttpServer(slack),
    ]
    gateway_url, twilio_url, slack_url = [await s.start() for s in servers]
    smtp_url = smtp.start()
    policy = tmp_path / "followup.toml"
    policy.write_text(POLICY, encoding="utf-8")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "KAFKA_TOPIC_PREFIX": kafka.prefix,
        "KAFKA_IDEMPOTENT_PRODUCER": "false",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "DATABASE_URL": database,
        "FOLLOWUP_POLICY_FILE": str(policy),
        "TIMER_POLL_INTERVAL_S": "0.2",
        "LOG_FORMAT": "json",
        "NOTIFIER_WEBHOOK_URL": gateway_url,
        "NOTIFIER_WEBHOOK_SECRET": SECRET,
        "NOTIFIER_TWILIO_ACCOUNT_SID": twilio.account_sid,
        "NOTIFIER_TWILIO_AUTH_TOKEN": twilio.auth_token,
        "NOTIFIER_TWILIO_FROM": "MG" + "1" * 32,
        "NOTIFIER_TWILIO_API_URL": twilio_url,
        "NOTIFIER_SMTP_URL": smtp_url,
        "NOTIFIER_EMAIL_FROM": "service@shop.example",
        "NOTIFIER_SLACK_URL": f"{slack_url}/services/T/B/X",
        "NOTIFIER_API_TOKEN": API_TOKEN,
    }
    process = ServiceProcess("notifier", env)
    try:
        await process.start()
        yield process, {"gateway": gateway, "twilio": twilio, "slack": slack, "smtp": smtp}
    finally:
        if process.process is not None and process.process.poll() is None:
            await process.stop()
        smtp.stop()
        for server in servers:
            await server.stop()


async def test_the_notifier_process_delivers_on_every_channel_and_stops_cleanly(
    kafka: Kafka, notifier_process: tuple[ServiceProcess, dict[str, Any]]
) -> None:
    process, servers = notifier_process
    twilio: TwilioStandIn = servers["twilio"]
    now = datetime.now(UTC)
    await kafka.publish(
        "shop.orders",
        order_created(
            "O-N1",
            at=now,
            deadline=now + timedelta(hours=24),
            customer_id="C-N1",
            phone="+8613812345678",
            email="wang@example.com",
        ),
        key="O-N1",
    )
    # Logistics knows only the order; the notifier finds the customer's phone.
    await kafka.publish(
        "followup.notifications",
        send_command(
            "shipment_exception:O-N1:lost",
            "shipment_exception",
            order_id="O-N1",
            template="ops_escalation",  # a shipped template, so the test needs no other
            variables={"summary": "包裹丢失", "order_id": "O-N1"},
        ),
        key="O-N1",
    )
    await eventually(lambda: _count(twilio.accepted), lambda n: n == 1, what="the SMS")
    form = twilio.accepted[0].form()
    assert form["To"] == "+8613812345678"
    assert form["MessagingServiceSid"] == "MG" + "1" * 32
    assert "包裹丢失" in form["Body"]

    # The platform opts the customer out of e-mail; the confirmation goes to the gateway.
    await kafka.publish(
        "followup.notifications",
        cloud_event(
            "followup.notification.preference",
            {"customer_id": "C-N1", "channel": "email", "opted_out": True, "source": "app"},
            time=datetime.now(UTC),
        ),
        key="C-N1",
    )
    await kafka.publish(
        "followup.notifications",
        send_command(
            "order_confirmation:O-N1",
            "order_confirmation",
            customer_id="C-N1",
            order_id="O-N1",
            template="ops_escalation",
            variables={"summary": "订单已确认", "order_id": "O-N1"},
        ),
        key="C-N1",
    )
    gateway: WebhookReceiver = servers["gateway"]
    await eventually(lambda: _count(gateway.accepted), lambda n: n == 1, what="the gateway")
    assert gateway.accepted[0].payload["idempotency_key"] == "order_confirmation:O-N1"
    assert servers["smtp"].handler.mails == []

    # Staff escalation to the Slack webhook.
    await kafka.publish(
        "followup.notifications",
        send_command(
            "ops:O-N1:lost", "ops_escalation", variables={"summary": "包裹丢失", "severity": "red"}
        ),
        key="O-N1",
    )
    slack: SlackStandIn = servers["slack"]
    await eventually(lambda: _count(slack.accepted), lambda n: n == 1, what="the Slack message")
    assert json.loads(slack.accepted[0].body)["text"].startswith("【需人工跟进】包裹丢失")

    statuses = await kafka.read_all("followup.notification-status", expected=3)
    assert sorted(json.loads(r.value)["data"]["channel"] for r in statuses) == [
        "ops",
        "sms",
        "webhook",
    ]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{process.port}") as client:
        metrics = (await client.get("/metrics")).text
        # The platform reads the opt-out back over HTTP, with its token only.
        refused = await client.get("/preferences", params={"customer_id": "C-N1"})
        assert refused.status_code == 401
        answer = await client.get(
            "/preferences",
            params={"customer_id": "C-N1"},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        assert answer.status_code == 200
        assert answer.json()["opt_outs"] == [
            {
                "channel": "email",
                "message_class": None,
                "source": "app",
                "at": answer.json()["opt_outs"][0]["at"],
            }
        ]
    sent = [
        line for line in metrics.splitlines() if line.startswith("followup_notifications_total")
    ]
    assert any('channel="sms"' in line and 'outcome="sent"' in line for line in sent)
    assert "C-N1" not in metrics
    assert "O-N1" not in metrics
    # Graceful: uvicorn finishes the shutdown, then re-raises the SIGTERM it caught.
    assert await process.stop() in (0, -signal.SIGTERM)


async def _count(items: list[Any]) -> int:
    return len(items)

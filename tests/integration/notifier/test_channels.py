"""Each channel through its real server on loopback: the gateway webhook, Twilio SMS, SMTP
e-mail, the DingTalk and Slack bots; recipients resolved from order.created; fallback to the
next channel on a refusal, and to the secondary bot on a failure."""

from collections.abc import Sequence
from datetime import timedelta

import pytest

from contracts.notifications import MessageClass, NotificationKind, Priority
from tests.harness import eventually
from tests.integration.notifier.conftest import NotifierFactory

pytestmark = pytest.mark.integration

POLICY = """
[notifier]
retry_base = "10m"
retry_max = "10m"

[notifier.routes]
shipment_exception = ["sms", "email"]
order_confirmation = ["email"]
"""

OPS = {
    "summary": "包裹被退回发件人",
    "severity": "red",
    "order_id": "O-1",
    "detail": "顺丰 SF1234567890 扫描为退回发件人",
}


async def _count(items: Sequence[object]) -> int:
    return len(items)


async def test_each_channel_delivers_its_messages(notifier: NotifierFactory) -> None:
    async with notifier(POLICY) as n:
        p = n.providers
        await n.order("O-1", "C-1", phone="+86 138-1234-5678", email="wang@example.com")
        await n.recipient_known("C-1")

        # Logistics knows only the order: the notifier finds the customer and their phone.
        await n.send(
            "shipment_exception:O-1:1",
            NotificationKind.SHIPMENT_EXCEPTION,
            order_id="O-1",
            priority=Priority.HIGH,
            variables={"order_id": "O-1"},
        )
        sms = await n.until_status("shipment_exception:O-1:1", "sent")
        assert (sms["customer_id"], sms["channel"], sms["provider"]) == ("C-1", "sms", "twilio")
        request = p.twilio.accepted[0]
        form = request.form()
        assert form["To"] == "+8613812345678"
        assert form["From"] == "+15005550006"
        assert form["Body"] == "很抱歉，订单 O-1 的包裹出现异常，今天内给您回复。"

        # E-mail over SMTP to the customer's address.
        await n.send(
            "order_confirmation:O-1",
            NotificationKind.ORDER_CONFIRMATION,
            customer_id="C-1",
            order_id="O-1",
            variables={"order_id": "O-1"},
        )
        await n.until_status("order_confirmation:O-1", "sent")
        mail = p.smtp.handler.mails[0]
        assert mail.rcpt_tos == ["wang@example.com"]
        assert mail.mail_from == "service@shop.example"
        assert mail.message["Subject"] == "订单已确认 O-1"
        row = await n.row("order_confirmation:O-1")
        assert row is not None
        assert mail.message["Message-ID"] == f"<{row['message_id']}@followup.notifier>"
        assert "请核对地址" in mail.message.get_payload(decode=True).decode()  # type: ignore[union-attr]

        # Customer messages of kinds without a route of their own go to the gateway, signed.
        await n.send(
            "shipment_update:O-1:1",
            NotificationKind.SHIPMENT_UPDATE,
            customer_id="C-1",
            order_id="O-1",
            locale="zh-CN",
            variables={"order_id": "O-1", "note": "已到达杭州转运中心"},
            meta={"rule": "arrived_hub"},
        )
        await n.until_status("shipment_update:O-1:1", "sent")
        message = p.gateway.accepted[0]
        assert message.signature_valid
        assert message.headers["idempotency-key"] == "shipment_update:O-1:1"
        assert message.payload["text"] == "订单 O-1：已到达杭州转运中心，可随时回复查询。"
        assert message.payload["meta"] == {"rule": "arrived_hub"}

        # Staff escalations go to the DingTalk robot, signed (加签).
        await n.send("ops:O-1:returned", NotificationKind.OPS_ESCALATION, variables=OPS)
        ops = await n.until_status("ops:O-1:returned", "sent")
        assert (ops["channel"], ops["provider"]) == ("ops", "dingtalk")
        robot = p.dingtalk.accepted[0].json()
        assert robot["msgtype"] == "markdown"
        assert robot["markdown"]["title"] == "【需人工跟进】包裹被退回发件人"
        assert "等级：红色（严重问题）" in robot["markdown"]["text"]
        assert ops["customer_id"] is None

        # While the robot fails, escalations move to the secondary bot (Slack) at once.
        p.dingtalk.fail_next(503)
        await n.send(
            "ops:O-1:again",
            NotificationKind.OPS_ESCALATION,
            variables={**OPS, "severity": "yellow"},
        )
        slack = await n.until_status("ops:O-1:again", "sent")
        assert (slack["channel"], slack["provider"]) == ("ops", "slack")
        assert p.slack.accepted[0].json()["text"].startswith("【需人工跟进】包裹被退回发件人")
        assert await n.attempts("ops:O-1:again") == [
            ("ops", "dingtalk", "retry"),
            ("ops", "slack", "delivered"),
        ]

        statuses = await n.statuses(expected=5)
        assert {k: e["type"] for k, e in statuses.items()} == {
            "shipment_exception:O-1:1": "followup.notification.sent",
            "order_confirmation:O-1": "followup.notification.sent",
            "shipment_update:O-1:1": "followup.notification.sent",
            "ops:O-1:returned": "followup.notification.sent",
            "ops:O-1:again": "followup.notification.sent",
        }
        sent = statuses["shipment_exception:O-1:1"]["data"]
        assert (sent["channel"], sent["provider"], sent["attempts"]) == ("sms", "twilio", 1)
        assert sent["customer_id"] == "C-1"


async def test_a_message_for_an_unknown_order_waits_for_its_recipient(
    notifier: NotifierFactory,
) -> None:
    async with notifier(POLICY) as n:
        await n.send(
            "shipment_exception:O-2:1",
            NotificationKind.SHIPMENT_EXCEPTION,
            order_id="O-2",
            variables={"order_id": "O-2"},
        )
        held = await n.until_status("shipment_exception:O-2:1", "held")
        assert held["customer_id"] is None
        assert (await n.events("shipment_exception:O-2:1"))[0][0] == "held"

        # The order event arrives late (no ordering across topics): the message goes out.
        await n.order("O-2", "C-2", phone="+8613700000002")
        sent = await n.until_status("shipment_exception:O-2:1", "sent")
        assert sent["customer_id"] == "C-2"
        assert [e for e, _ in await n.events("shipment_exception:O-2:1")] == [
            "held",
            "released",
            "skipped_channel",  # the fallback e-mail: C-2 gave no address
        ]
        assert n.providers.twilio.accepted[-1].form()["To"] == "+8613700000002"

        # The order is known but its release was missed (order.created committed while the
        # command's batch did): the next look, a minute later, finds it.
        await n.send(
            "shipment_exception:O-3:race",
            NotificationKind.SHIPMENT_EXCEPTION,
            order_id="O-3",
            variables={"order_id": "O-3"},
        )
        await n.until_status("shipment_exception:O-3:race", "held")
        await n.db.execute("INSERT INTO notifier.recipient_orders VALUES ('O-3', 'C-2', now())")
        n.clock.advance(timedelta(minutes=1))
        raced = await n.until_status("shipment_exception:O-3:race", "sent")
        assert raced["customer_id"] == "C-2"

        # An order that never comes: the hold ends and the message is suppressed, with why.
        await n.send(
            "shipment_exception:O-404:1",
            NotificationKind.SHIPMENT_EXCEPTION,
            order_id="O-404",
            variables={"order_id": "O-404"},
        )
        await n.until_status("shipment_exception:O-404:1", "held")
        n.clock.advance(timedelta(hours=25))
        gone = await n.until_status("shipment_exception:O-404:1", "suppressed")
        assert gone["reason"] == "recipient_unknown: order O-404 was not seen in time"


async def test_a_refused_channel_falls_back_and_a_refusal_without_fallback_fails_at_once(
    notifier: NotifierFactory,
) -> None:
    async with notifier(POLICY) as n:
        p = n.providers
        p.twilio.refused_numbers.add("+8613900000000")
        p.smtp.handler.refused.add("nobody@example.com")
        await n.order("O-3", "C-3", phone="+8613900000000", email="c3@example.com")
        await n.order("O-4", "C-4", email="nobody@example.com")
        await n.recipient_known("C-3")
        await n.recipient_known("C-4")

        await n.send(
            "shipment_exception:O-3:1",
            NotificationKind.SHIPMENT_EXCEPTION,
            order_id="O-3",
            variables={"order_id": "O-3"},
        )
        sent = await n.until_status("shipment_exception:O-3:1", "sent")
        assert await n.attempts("shipment_exception:O-3:1") == [
            ("sms", "twilio", "permanent"),
            ("email", "smtp", "delivered"),
        ]
        assert sent["dead_channels"] == ["sms"]
        assert p.smtp.handler.mails[-1].rcpt_tos == ["c3@example.com"]

        await n.send(
            "order_confirmation:O-4",
            NotificationKind.ORDER_CONFIRMATION,
            order_id="O-4",
            variables={"order_id": "O-4"},
        )
        failed = await n.until_status("order_confirmation:O-4", "failed")
        assert failed["reason"].startswith("email/smtp: smtp 550: 5.1.1 mailbox unavailable")
        assert failed["attempts"] == 1

        # C-4 has no phone: SMS is left out (and logged), e-mail is tried and refused.
        await n.send(
            "shipment_exception:O-4:1",
            NotificationKind.SHIPMENT_EXCEPTION,
            order_id="O-4",
            message_class=MessageClass.TRANSACTIONAL,
            variables={"order_id": "O-4"},
        )
        await n.until_status("shipment_exception:O-4:1", "failed")
        assert ("skipped_channel", "sms: no phone on record") in await n.events(
            "shipment_exception:O-4:1"
        )
        statuses = await n.statuses(expected=3)
        failure = statuses["order_confirmation:O-4"]
        assert failure["type"] == "followup.notification.failed"
        assert failure["data"]["reason"].startswith("email/smtp: smtp 550")
        await eventually(lambda: _count(p.twilio.requests), lambda c: c == 1, what="one SMS try")

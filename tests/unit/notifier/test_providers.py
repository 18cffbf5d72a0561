"""Request formats that need no server: signatures and e-mail composition."""

import base64
import hashlib
import hmac

import pytest

from services.notifier.channels import OutgoingMessage
from services.notifier.channels.chatbots import dingtalk_sign, feishu_sign
from services.notifier.channels.email import SmtpEmail
from services.notifier.service import _reason_label
from services.notifier.settings import NotifierSettings

MESSAGE = OutgoingMessage(
    message_id="5f0c6c1e-3f1a-4c53-9b1e-4a8f8a0c2f11",
    idempotency_key="k",
    kind="order_confirmation",
    order_id="O-1",
    customer_id="C-1",
    case_id=None,
    locale="zh-CN",
    subject="订单已确认",
    text="王女士，您好！订单已确认。",
    sms="短信",
    meta={},
    created_at="2026-11-22T10:15:00+08:00",
    email="wang@example.com",
)


def test_dingtalk_signature_is_hmac_of_timestamp_and_secret_keyed_by_the_secret() -> None:
    expected = base64.b64encode(
        hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    ).decode()
    assert dingtalk_sign("SECabc", 1700000000000) == expected


def test_feishu_signature_is_keyed_by_timestamp_and_secret_over_nothing() -> None:
    expected = base64.b64encode(
        hmac.new(b"1700000000\nsecret", b"", hashlib.sha256).digest()
    ).decode()
    assert feishu_sign("secret", 1700000000) == expected


def test_email_has_a_stable_message_id_and_utf8_subject() -> None:
    email = SmtpEmail("smtp://u:p%40ss@mail.example:2525", "Shop <s@shop.example>").compose(MESSAGE)
    assert email["Message-ID"] == "<5f0c6c1e-3f1a-4c53-9b1e-4a8f8a0c2f11@followup.notifier>"
    assert email["Subject"] == "订单已确认"
    assert email["To"] == "wang@example.com"
    assert email["Auto-Submitted"] == "auto-generated"


def test_smtp_url_must_name_a_scheme_and_host() -> None:
    with pytest.raises(ValueError, match="smtp://user:pass@host:587"):
        SmtpEmail("mail.example:25", "s@shop.example")


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        (None, ""),
        ("expired", "expired"),
        ("cancelled: order_paid", "cancelled"),
        ("sms/twilio: twilio 21211: The 'To' number +86138… is not valid", "sms_refused"),
        ("gave_up: 8 attempts, the last: webhook/gateway: HTTP 503", "gave_up"),
        ("merged: superseded by message 1234", "merged"),
    ],
)
def test_reason_labels_are_bounded_categories_without_personal_data(
    reason: str | None, label: str
) -> None:
    assert _reason_label(reason) == label


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"notifier_webhook_url": "http://gw"}, "NOTIFIER_WEBHOOK_SECRET is required"),
        (
            {"notifier_webhook_url": "http://gw", "notifier_webhook_secret": "changeme"},
            "looks like a placeholder",
        ),
        ({"notifier_twilio_account_sid": "AC1"}, "set NOTIFIER_TWILIO_AUTH_TOKEN and"),
        ({"notifier_smtp_url": "smtp://h"}, "set NOTIFIER_EMAIL_FROM too"),
        ({"notifier_dingtalk_url": "http://d"}, "NOTIFIER_DINGTALK_SECRET is required"),
    ],
)
def test_settings_refuse_incomplete_providers(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NotifierSettings.model_validate(env)

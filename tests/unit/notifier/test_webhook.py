import hashlib
import hmac
import json

from services.notifier.channels import OutgoingMessage
from services.notifier.channels.webhook import signature, webhook_body
from tests.harness import WEBHOOK_BODY_FIELDS

MESSAGE = OutgoingMessage(
    message_id="m-1",
    idempotency_key="unpaid_reminder:O-1001:1",
    kind="unpaid_reminder",
    order_id="O-1001",
    customer_id="C-1",
    case_id=None,
    locale="zh-CN",
    subject="您的订单还在为您保留",
    text="王女士，您好！",
    sms="短信",
    meta={"tier": 1, "segment": "new"},
    created_at="2026-11-22T10:15:00+08:00",
)


def test_body_has_exactly_the_contract_fields_in_order_as_utf8_json() -> None:
    body = webhook_body(MESSAGE)
    assert list(json.loads(body)) == WEBHOOK_BODY_FIELDS
    assert "王女士".encode() in body  # not \\u-escaped
    assert json.loads(body)["case_id"] is None


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = webhook_body(MESSAGE)
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert signature(b"secret", body) == f"sha256={expected}"
    assert signature(b"other", body) != f"sha256={expected}"

"""The shop's own messaging gateway, exactly as platform-contract.md specifies it."""

import hashlib
import hmac
import json

from services.notifier.channels import Outcome, OutgoingMessage, SendResult
from services.notifier.channels.httpclient import HttpClient


def webhook_body(message: OutgoingMessage) -> bytes:
    body = {
        "message_id": message.message_id,
        "idempotency_key": message.idempotency_key,
        "kind": message.kind,
        "order_id": message.order_id,
        "customer_id": message.customer_id,
        "case_id": message.case_id,
        "locale": message.locale,
        "subject": message.subject,
        "text": message.text,
        "meta": message.meta,
        "created_at": message.created_at,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``, the X-Signature header value."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookProvider:
    channel = "webhook"

    def __init__(self, url: str, secret: str, client: HttpClient, *, name: str = "gateway") -> None:
        self.name = name
        self._url = url
        self._secret = secret.encode()
        self._client = client

    async def send(self, message: OutgoingMessage) -> SendResult:
        body = webhook_body(message)
        answer = await self._client.post(
            self._url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": message.idempotency_key,
                "X-Signature": signature(self._secret, body),
            },
        )
        if isinstance(answer, SendResult):
            return answer
        if 200 <= answer.status < 300:
            return SendResult(Outcome.DELIVERED, f"HTTP {answer.status}")
        # The contract: any other answer means "try again later", 4xx included; the same
        # Idempotency-Key lets the gateway drop repeats.
        return SendResult(Outcome.RETRY, f"HTTP {answer.status}: {answer.text[:200]}")

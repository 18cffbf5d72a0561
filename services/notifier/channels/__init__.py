"""Delivery channels and their providers. A provider turns a rendered message into one call to
its API and says whether it was delivered, should be tried again, or failed for good."""

import json
from enum import StrEnum
from typing import Any, Protocol

from followup.values import value


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    """Temporary: timeout, 5xx, 429, connection refused, or anything the contract says to retry."""
    PERMANENT = "permanent"
    """Will never work as it is (the provider refused the request); fail with its reason."""


@value
class SendResult:
    outcome: Outcome
    detail: str = ""
    """The provider's answer: its id for the message, or its reason for refusing it."""


@value
class OutgoingMessage:
    message_id: str
    idempotency_key: str
    kind: str
    order_id: str | None
    customer_id: str | None
    case_id: str | None
    locale: str
    subject: str
    text: str
    sms: str
    meta: dict[str, Any]
    created_at: str
    """ISO 8601 in the customer's timezone; stable across retries."""
    phone: str | None = None
    email: str | None = None
    customer_name: str | None = None


class Provider(Protocol):
    channel: str
    """webhook, sms, email or ops."""
    name: str
    """The provider within the channel, for metrics and the delivery log."""

    async def send(self, message: OutgoingMessage) -> SendResult: ...


@value
class HttpAnswer:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def status_outcome(status: int) -> Outcome:
    """Common HTTP reading for provider APIs: 2xx delivered, 408/429/5xx temporary, other 4xx
    a refusal that will not change on its own."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (408, 409, 425, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.PERMANENT

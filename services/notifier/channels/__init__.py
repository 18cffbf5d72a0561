"""Delivery channels. Each turns a rendered message into one provider call and says whether
it was delivered, should be tried again, or failed for good."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    """Temporary: timeout, 5xx, connection refused, or anything the contract says to retry."""
    PERMANENT = "permanent"
    """Will never work as it is (e.g. rejected request); fail at once with the reason."""


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider: str
    detail: str = ""


@dataclass(frozen=True)
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


class Channel(Protocol):
    name: str

    async def send(self, message: OutgoingMessage) -> SendResult: ...

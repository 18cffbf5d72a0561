"""Bytes on a topic <-> typed events, with errors that name the offending field."""

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from contracts.envelope import CloudEvent, Contract
from contracts.notifications import (
    CancelNotificationCommand,
    ContactPreferenceCommand,
    NotificationCommand,
    NotificationFailedEvent,
    NotificationSentEvent,
    NotificationStatusEvent,
    NotificationSuppressedEvent,
    SendNotificationCommand,
)
from contracts.shop import (
    AftersaleApprovedEvent,
    AftersaleClosedEvent,
    AftersaleEvent,
    AftersaleRefundedEvent,
    AftersaleRejectedEvent,
    AftersaleRequestedEvent,
    AftersaleReturnReceivedEvent,
    AftersaleReturnShippedEvent,
    OrderCancelledEvent,
    OrderClosedEvent,
    OrderCreatedEvent,
    OrderEvent,
    PaymentEvent,
    PaymentFailedEvent,
    PaymentSucceededEvent,
    ShipmentDispatchedEvent,
    ShipmentEvent,
    ShipmentTrackingEvent,
)
from contracts.topics import Topic

E = TypeVar("E", bound=CloudEvent)

_MAX_REASON_ERRORS = 5


class InvalidEvent(ValueError):
    """A message that cannot be accepted; ``reason`` names the field and what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventDecoder(Generic[E]):
    """Validates raw message values of one topic straight from JSON bytes."""

    def __init__(self, adapter: TypeAdapter[E], types: tuple[type[CloudEvent], ...]) -> None:
        self._adapter = adapter
        self._tags = {t.model_fields["type"].annotation.__args__[0] for t in types}  # type: ignore[union-attr]
        self.event_types = tuple(sorted(self._tags))

    def decode(self, raw: bytes | None) -> E:
        if not raw:
            raise InvalidEvent("(message): empty message value, expected a CloudEvents JSON object")
        try:
            return self._adapter.validate_json(raw)
        except ValidationError as exc:
            raise InvalidEvent(self._describe(exc)) from exc

    def _describe(self, exc: ValidationError) -> str:
        parts = []
        errors = exc.errors(include_url=False, include_input=False)
        for error in errors[:_MAX_REASON_ERRORS]:
            # A tagged union puts the tag first in the location; the path inside the event
            # is what a platform engineer needs to find the field.
            loc = [str(p) for i, p in enumerate(error["loc"]) if not (i == 0 and p in self._tags)]
            parts.append(f"{'.'.join(loc) or '(message)'}: {error['msg']}")
        if len(errors) > _MAX_REASON_ERRORS:
            parts.append(f"... and {len(errors) - _MAX_REASON_ERRORS} more")
        return "; ".join(parts)


ORDER_EVENTS: EventDecoder[OrderCreatedEvent | OrderCancelledEvent | OrderClosedEvent] = (
    EventDecoder(
        TypeAdapter(OrderEvent), (OrderCreatedEvent, OrderCancelledEvent, OrderClosedEvent)
    )
)
PAYMENT_EVENTS: EventDecoder[PaymentSucceededEvent | PaymentFailedEvent] = EventDecoder(
    TypeAdapter(PaymentEvent), (PaymentSucceededEvent, PaymentFailedEvent)
)
SHIPMENT_EVENTS: EventDecoder[ShipmentDispatchedEvent | ShipmentTrackingEvent] = EventDecoder(
    TypeAdapter(ShipmentEvent), (ShipmentDispatchedEvent, ShipmentTrackingEvent)
)
AFTERSALE_EVENTS: EventDecoder[
    AftersaleRequestedEvent
    | AftersaleApprovedEvent
    | AftersaleRejectedEvent
    | AftersaleReturnShippedEvent
    | AftersaleReturnReceivedEvent
    | AftersaleRefundedEvent
    | AftersaleClosedEvent
] = EventDecoder(
    TypeAdapter(AftersaleEvent),
    (
        AftersaleRequestedEvent,
        AftersaleApprovedEvent,
        AftersaleRejectedEvent,
        AftersaleReturnShippedEvent,
        AftersaleReturnReceivedEvent,
        AftersaleRefundedEvent,
        AftersaleClosedEvent,
    ),
)
NOTIFICATION_COMMANDS: EventDecoder[
    SendNotificationCommand | CancelNotificationCommand | ContactPreferenceCommand
] = EventDecoder(
    TypeAdapter(NotificationCommand),
    (SendNotificationCommand, CancelNotificationCommand, ContactPreferenceCommand),
)
NOTIFICATION_STATUSES: EventDecoder[
    NotificationSentEvent | NotificationFailedEvent | NotificationSuppressedEvent
] = EventDecoder(
    TypeAdapter(NotificationStatusEvent),
    (NotificationSentEvent, NotificationFailedEvent, NotificationSuppressedEvent),
)

DECODERS: dict[Topic, EventDecoder[Any]] = {
    Topic.ORDERS: ORDER_EVENTS,
    Topic.PAYMENTS: PAYMENT_EVENTS,
    Topic.SHIPMENTS: SHIPMENT_EVENTS,
    Topic.AFTERSALES: AFTERSALE_EVENTS,
    Topic.NOTIFICATIONS: NOTIFICATION_COMMANDS,
    Topic.NOTIFICATION_STATUS: NOTIFICATION_STATUSES,
}


def envelope(
    event_class: type[E],
    data: Contract,
    *,
    source: str,
    time: datetime,
    event_id: str | None = None,
) -> E:
    """Wrap ``data`` in a CloudEvents envelope of the given event class."""
    event_type = event_class.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    return event_class.model_validate(
        {
            "specversion": "1.0",
            "id": event_id or str(uuid.uuid4()),
            "source": source,
            "type": event_type,
            "time": time,
            "data": data,
        }
    )


def encode(event: CloudEvent) -> bytes:
    """Structured-mode JSON bytes, as the platform contract puts them on the wire."""
    return event.model_dump_json(exclude_none=True).encode()

import inspect
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts import envelope, notifications, shop
from contracts.codec import (
    AFTERSALE_EVENTS,
    DECODERS,
    NOTIFICATION_COMMANDS,
    ORDER_EVENTS,
    PAYMENT_EVENTS,
    SHIPMENT_EVENTS,
    InvalidEvent,
    encode,
)
from contracts.topics import Topic, all_topic_names
from tests.harness import cloud_event, order_created

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def test_order_created_parses_into_typed_values() -> None:
    event = ORDER_EVENTS.decode(raw(order_created("O-1", at=T0, deadline=T0 + timedelta(hours=24))))
    assert isinstance(event, shop.OrderCreatedEvent)
    assert event.data.total == Decimal("599.00")
    assert event.data.customer.locale == "zh-CN"
    assert event.data.customer.timezone == "Asia/Shanghai"
    assert event.data.items[0].options == {"size": "M", "color": "藏青"}
    assert event.time.tzinfo is not None


EVENTS_OF_EVERY_TYPE: list[tuple[Any, str, dict[str, Any]]] = [
    (ORDER_EVENTS, "shop.order.cancelled", {"order_id": "O-1", "cancelled_at": T0.isoformat()}),
    (
        ORDER_EVENTS,
        "shop.order.closed",
        {"order_id": "O-1", "closed_at": T0.isoformat(), "reason": "unpaid_timeout"},
    ),
    (
        PAYMENT_EVENTS,
        "shop.payment.succeeded",
        {"order_id": "O-1", "paid_at": T0.isoformat(), "amount": "9.90", "currency": "CNY"},
    ),
    (PAYMENT_EVENTS, "shop.payment.failed", {"order_id": "O-1", "failed_at": T0.isoformat()}),
    (
        SHIPMENT_EVENTS,
        "shop.shipment.dispatched",
        {
            "order_id": "O-1",
            "shipment_id": "S-1",
            "carrier": "SF",
            "tracking_number": "SF1",
            "dispatched_at": T0.isoformat(),
            "estimated_delivery": "2026-11-25",
            "service_level": "express",
            "destination": {"city": "上海"},
        },
    ),
    (
        SHIPMENT_EVENTS,
        "shop.shipment.tracking",
        {
            "order_id": "O-1",
            "shipment_id": "S-1",
            "status": "customs_hold",
            "scanned_at": T0.isoformat(),
            "estimated_delivery": "2026-11-26T18:00:00+08:00",
        },
    ),
    (
        AFTERSALE_EVENTS,
        "shop.aftersale.requested",
        {
            "case_id": "R-1",
            "order_id": "O-1",
            "kind": "return_refund",
            "requested_at": T0.isoformat(),
            "amount": "599.00",
            "currency": "CNY",
        },
    ),
    (
        AFTERSALE_EVENTS,
        "shop.aftersale.approved",
        {"case_id": "R-1", "order_id": "O-1", "at": T0.isoformat()},
    ),
    (
        AFTERSALE_EVENTS,
        "shop.aftersale.rejected",
        {"case_id": "R-1", "order_id": "O-1", "at": T0.isoformat(), "reason": "worn"},
    ),
    (
        AFTERSALE_EVENTS,
        "shop.aftersale.return_shipped",
        {
            "case_id": "R-1",
            "order_id": "O-1",
            "at": T0.isoformat(),
            "carrier": "ZTO",
            "tracking_number": "Z1",
        },
    ),
    (
        AFTERSALE_EVENTS,
        "shop.aftersale.return_received",
        {"case_id": "R-1", "order_id": "O-1", "at": T0.isoformat()},
    ),
    (
        AFTERSALE_EVENTS,
        "shop.aftersale.refunded",
        {
            "case_id": "R-1",
            "order_id": "O-1",
            "at": T0.isoformat(),
            "amount": "599.00",
            "currency": "CNY",
            "method": "original",
        },
    ),
    (
        AFTERSALE_EVENTS,
        "shop.aftersale.closed",
        {"case_id": "R-1", "order_id": "O-1", "at": T0.isoformat()},
    ),
]


@pytest.mark.parametrize(("decoder", "event_type", "data"), EVENTS_OF_EVERY_TYPE)
def test_every_contract_event_type_is_accepted(
    decoder: Any, event_type: str, data: dict[str, Any]
) -> None:
    event = decoder.decode(raw(cloud_event(event_type, data, time=T0)))
    assert event.type == event_type
    assert event.data.order_id == "O-1"


def test_estimated_delivery_takes_a_date_or_a_time() -> None:
    dispatched = {
        "order_id": "O-1",
        "shipment_id": "S-1",
        "carrier": "SF",
        "tracking_number": "SF1",
        "dispatched_at": T0.isoformat(),
    }
    as_date = SHIPMENT_EVENTS.decode(
        raw(
            cloud_event(
                "shop.shipment.dispatched",
                {**dispatched, "estimated_delivery": "2026-11-25"},
                time=T0,
            )
        )
    )
    as_time = SHIPMENT_EVENTS.decode(
        raw(
            cloud_event(
                "shop.shipment.dispatched",
                {**dispatched, "estimated_delivery": "2026-11-25T18:00:00+08:00"},
                time=T0,
            )
        )
    )
    assert not isinstance(as_date.data.estimated_delivery, datetime)
    assert isinstance(as_time.data.estimated_delivery, datetime)


def test_unknown_extra_fields_are_ignored_at_every_level() -> None:
    event = order_created("O-1", at=T0, deadline=T0 + timedelta(hours=1))
    event["traceparent"] = "00-abc"
    event["data"]["coupon"] = {"code": "X"}
    event["data"]["customer"]["vip_since"] = "2020"
    event["data"]["items"][0]["warehouse"] = "SH-1"
    assert ORDER_EVENTS.decode(raw(event)).data.order_id == "O-1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e["data"]["customer"].pop("id"), "data.customer.id: Field required"),
        (
            lambda e: e["data"].update(total=599.0),
            'data.total: Value error, must be a decimal string such as "99.00", not a JSON number',
        ),
        (lambda e: e.update(time="2026-11-22T10:00:00"), "time: Input should have timezone info"),
        (
            lambda e: e["data"]["items"][0].update(quantity="many"),
            "data.items.0.quantity: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            lambda e: e["data"]["customer"].update(timezone="Mars/Olympus"),
            "data.customer.timezone: Value error, unknown IANA timezone 'Mars/Olympus', e.g. 'Asia/Shanghai'",
        ),
        (
            lambda e: e["data"].update(items=[]),
            "data.items: List should have at least 1 item after validation, not 0",
        ),
        (
            lambda e: e.update(type="shop.order.updated"),
            "(message): Input tag 'shop.order.updated' found using 'type' does not match any of the expected tags: 'shop.order.created', 'shop.order.cancelled', 'shop.order.closed'",
        ),
    ],
)
def test_invalid_events_name_the_field_and_the_problem(mutate: Any, reason: str) -> None:
    event = order_created("O-1", at=T0, deadline=T0 + timedelta(hours=1))
    mutate(event)
    with pytest.raises(InvalidEvent) as error:
        ORDER_EVENTS.decode(raw(event))
    assert error.value.reason == reason


@pytest.mark.parametrize("value", [b"", None, b"[1,2]", b"\xff\xfe"])
def test_non_events_are_rejected_with_a_reason(value: bytes | None) -> None:
    with pytest.raises(InvalidEvent) as error:
        ORDER_EVENTS.decode(value)
    assert error.value.reason.startswith("(message): ")


def test_phone_numbers_are_normalised_to_e164() -> None:
    event = order_created("O-1", at=T0, deadline=T0 + timedelta(hours=1), phone="+86 138-1234-5678")
    decoded = ORDER_EVENTS.decode(raw(event))
    assert isinstance(decoded, shop.OrderCreatedEvent)
    assert decoded.data.customer.phone == "+8613812345678"


def test_models_are_frozen() -> None:
    event = ORDER_EVENTS.decode(raw(order_created("O-1", at=T0, deadline=T0 + timedelta(hours=1))))
    with pytest.raises(ValidationError):
        event.data.order_id = "O-2"  # type: ignore[misc]


def test_commands_round_trip_through_their_encoding() -> None:
    from contracts.codec import envelope as wrap

    command = notifications.SendNotification(
        idempotency_key="unpaid_reminder:O-1:1",
        kind=notifications.NotificationKind.UNPAID_REMINDER,
        customer_id="C-1",
        order_id="O-1",
        variables={"total": "599.00"},
        message_class=notifications.MessageClass.MARKETING,
        expires_at=T0,
    )
    encoded = encode(wrap(notifications.SendNotificationCommand, command, source="test", time=T0))
    decoded = NOTIFICATION_COMMANDS.decode(encoded)
    assert isinstance(decoded, notifications.SendNotificationCommand)
    assert decoded.data == command


def _commands() -> list[envelope.CloudEvent]:
    from contracts.codec import envelope as wrap

    shanghai = timezone(timedelta(hours=8))
    send = notifications.SendNotification(
        idempotency_key="unpaid_reminder:O-1:1",
        kind=notifications.NotificationKind.UNPAID_REMINDER,
        template="unpaid_reminder.member.2",
        customer_id="C-1",
        order_id="O-1",
        locale="zh-CN",
        timezone="Asia/Shanghai",
        variables={
            "customer_name": "王女士",
            "coupon": None,
            "amount": Decimal("599.00"),
            "orders": [{"order_id": "O-1", "items": [{"title": "大衣", "quantity": 1}]}],
            "at": datetime(2026, 11, 22, 18, 0, 0, 123456, tzinfo=shanghai),
            "last_tier": False,
            "ratio": 0.25,
            "nested": {"empty": {}, "none": None},
        },
        meta={"tier": 2, "segment": "member"},
        priority=notifications.Priority.LOW,
        message_class=notifications.MessageClass.MARKETING,
        not_before=datetime(2026, 11, 22, 8, 0, tzinfo=shanghai),
        expires_at=T0,
    )
    cancel = notifications.CancelNotification(
        order_id="O-1", kinds=[notifications.NotificationKind.UNPAID_REMINDER], reason="paid"
    )
    return [
        wrap(notifications.SendNotificationCommand, send, source="test", time=T0, event_id="k"),
        wrap(notifications.CancelNotificationCommand, cancel, source="test", time=T0),
    ]


def test_encoding_writes_the_bytes_pydantic_writes_for_every_contract() -> None:
    """``encode`` writes with orjson for speed; what it writes must not drift from the models:
    None fields left out, Decimals as strings, UTC as Z, other offsets kept."""
    events: list[envelope.CloudEvent] = [
        decoder.decode(raw(cloud_event(event_type, data, time=T0)))
        for decoder, event_type, data in EVENTS_OF_EVERY_TYPE
    ]
    events.append(
        ORDER_EVENTS.decode(raw(order_created("O-1", at=T0, deadline=T0 + timedelta(hours=24))))
    )
    events += _commands()
    for event in events:
        assert encode(event) == event.model_dump_json(exclude_none=True).encode(), event.type


def test_every_contract_field_is_described_for_the_asyncapi_document() -> None:
    undocumented = [
        f"{cls.__name__}.{name}"
        for module in (envelope, shop, notifications)
        for cls in vars(module).values()
        if inspect.isclass(cls) and issubclass(cls, BaseModel) and cls.__module__ == module.__name__
        for name, field in cls.model_fields.items()
        if not field.description
    ]
    assert undocumented == []


def test_every_topic_has_a_decoder_and_consumed_topics_have_dead_letter_topics() -> None:
    assert set(DECODERS) == set(Topic)
    assert "shop.orders.dlq" in all_topic_names()
    assert "followup.notifications.dlq" in all_topic_names()

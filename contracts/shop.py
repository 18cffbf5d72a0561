"""Events the shop platform publishes (platform-contract.md, "Topics and event types")."""

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, NonNegativeInt, PositiveInt

from contracts.envelope import CloudEvent, Contract
from contracts.values import (
    CurrencyCode,
    EmailAddress,
    Locale,
    Money,
    PhoneNumber,
    TimeZoneName,
)

ORDER_ID = "Order id on the shop platform; also the Kafka message key."
SHIPMENT_ID = "Shipment id; an order can have several shipments."
CASE_ID = "After-sales case id; an order can have several cases."


class MemberLevel(StrEnum):
    NONE = "none"
    SILVER = "silver"
    GOLD = "gold"
    DIAMOND = "diamond"


class Customer(Contract):
    """The buyer, as the platform knows them when the order is placed."""

    id: str = Field(min_length=1, description="Customer id on the shop platform.", examples=["C-1"])
    name: str | None = Field(default=None, description="Name to address the customer by.")
    locale: Locale = Field(default="zh-CN", description="Preferred language (BCP 47).")
    timezone: TimeZoneName = Field(
        default="Asia/Shanghai", description="IANA timezone, used for quiet hours."
    )
    phone: PhoneNumber | None = Field(default=None, description="Mobile number (E.164).")
    email: EmailAddress | None = Field(default=None, description="E-mail address.")
    member_level: MemberLevel = Field(default=MemberLevel.NONE, description="Membership tier.")
    paid_orders: NonNegativeInt | None = Field(
        default=None, description="Paid orders before this one, as the platform counts them."
    )
    total_spent: Money | None = Field(
        default=None, description="Lifetime spend before this order (decimal string)."
    )
    last_paid_at: AwareDatetime | None = Field(
        default=None, description="When the customer last paid for an order."
    )


class Item(Contract):
    sku: str = Field(min_length=1, description="Stock keeping unit.")
    title: str = Field(min_length=1, description="Product title as shown to the customer.")
    quantity: PositiveInt = Field(description="Units ordered.")
    unit_price: Money = Field(description="Price per unit (decimal string).")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Chosen options such as size and colour.",
        examples=[{"size": "M", "color": "navy"}],
    )
    stock_left: NonNegativeInt | None = Field(
        default=None, description="Units left in stock when the order was placed."
    )


def _address_from_text(value: Any) -> Any:
    # Some platforms send the address as one formatted line instead of an object.
    return {"street": value} if isinstance(value, str) else value


class ShippingAddress(Contract):
    recipient: str | None = Field(default=None, description="Who receives the parcel.")
    phone: PhoneNumber | None = Field(default=None, description="Recipient's phone (E.164).")
    country: str | None = Field(default=None, description="Country (ISO 3166 code or name).")
    region: str | None = Field(default=None, description="Province or state.")
    city: str | None = Field(default=None, description="City.")
    district: str | None = Field(default=None, description="District or county.")
    street: str | None = Field(default=None, description="Street, building and unit.")
    postal_code: str | None = Field(default=None, description="Postal code.")


class Destination(Contract):
    city: str | None = Field(default=None, description="Destination city.")
    region: str | None = Field(default=None, description="Destination province or state.")
    country: str | None = Field(default=None, description="Destination country.")


# --- shop.orders ----------------------------------------------------------------------------


class OrderCreated(Contract):
    order_id: str = Field(min_length=1, description=ORDER_ID, examples=["O-1001"])
    customer: Customer = Field(description="The buyer.")
    items: list[Item] = Field(min_length=1, description="What was ordered.")
    total: Money = Field(description="Amount payable (decimal string).")
    currency: CurrencyCode
    created_at: AwareDatetime = Field(description="When the order was placed.")
    pay_deadline: AwareDatetime = Field(
        description="When the platform closes the order if it is still unpaid."
    )
    shop_id: str | None = Field(default=None, description="Shop, for platforms with many.")
    shipping_address: Annotated[ShippingAddress | None, BeforeValidator(_address_from_text)] = (
        Field(default=None, description="Delivery address; an object, or one formatted line.")
    )


class OrderCancelled(Contract):
    order_id: str = Field(min_length=1, description=ORDER_ID)
    cancelled_at: AwareDatetime = Field(description="When the order was cancelled.")
    reason: str | None = Field(default=None, description="Why, as the platform records it.")


class OrderClosed(Contract):
    order_id: str = Field(min_length=1, description=ORDER_ID)
    closed_at: AwareDatetime = Field(description="When the platform closed the order.")
    reason: str | None = Field(
        default=None, description="Why it was closed.", examples=["unpaid_timeout"]
    )


# --- shop.payments --------------------------------------------------------------------------


class PaymentSucceeded(Contract):
    order_id: str = Field(min_length=1, description=ORDER_ID)
    paid_at: AwareDatetime = Field(description="When the payment succeeded.")
    amount: Money = Field(description="Amount paid (decimal string).")
    currency: CurrencyCode
    payment_id: str | None = Field(default=None, description="Payment id on the platform.")
    method: str | None = Field(
        default=None, description="Payment method.", examples=["alipay", "wechat_pay", "card"]
    )


class PaymentFailed(Contract):
    order_id: str = Field(min_length=1, description=ORDER_ID)
    failed_at: AwareDatetime = Field(description="When the payment attempt failed.")
    reason: str | None = Field(default=None, description="The payment provider's reason.")


# --- shop.shipments -------------------------------------------------------------------------


class ServiceLevel(StrEnum):
    EXPRESS = "express"
    STANDARD = "standard"


class TrackingStatus(StrEnum):
    """Normalised by the platform from the carrier's own codes."""

    INFO_RECEIVED = "info_received"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    CUSTOMS_HOLD = "customs_hold"
    RETURNED_TO_SENDER = "returned_to_sender"
    LOST = "lost"


EstimatedDelivery = Annotated[
    AwareDatetime | date,
    Field(description="Promised delivery: a date, or a time with offset."),
]


class ShipmentDispatched(Contract):
    order_id: str = Field(min_length=1, description=ORDER_ID)
    shipment_id: str = Field(min_length=1, description=SHIPMENT_ID)
    carrier: str = Field(min_length=1, description="Carrier name.", examples=["SF Express"])
    tracking_number: str = Field(min_length=1, description="The carrier's tracking number.")
    dispatched_at: AwareDatetime = Field(description="When the parcel left the warehouse.")
    estimated_delivery: EstimatedDelivery | None = Field(
        default=None, description="Promised delivery: a date, or a time with offset."
    )
    service_level: ServiceLevel | None = Field(
        default=None, description="Express or standard; decides the stall thresholds."
    )
    destination: Destination | None = Field(default=None, description="Where it is going.")


class ShipmentTracking(Contract):
    order_id: str = Field(min_length=1, description=ORDER_ID)
    shipment_id: str = Field(min_length=1, description=SHIPMENT_ID)
    status: TrackingStatus = Field(description="Normalised status of this scan.")
    scanned_at: AwareDatetime = Field(description="When the carrier scanned the parcel.")
    carrier_code: str | None = Field(default=None, description="The carrier's raw status code.")
    description: str | None = Field(default=None, description="The carrier's scan text.")
    location: str | None = Field(default=None, description="Where the scan happened.")
    estimated_delivery: EstimatedDelivery | None = Field(
        default=None, description="Revised delivery estimate, when the carrier gives one."
    )


# --- shop.aftersales ------------------------------------------------------------------------


class AftersaleKind(StrEnum):
    REFUND_ONLY = "refund_only"
    RETURN_REFUND = "return_refund"
    EXCHANGE = "exchange"


class AftersaleRequested(Contract):
    case_id: str = Field(min_length=1, description=CASE_ID)
    order_id: str = Field(min_length=1, description=ORDER_ID)
    kind: AftersaleKind = Field(description="Refund only, return and refund, or exchange.")
    requested_at: AwareDatetime = Field(description="When the customer filed the request.")
    amount: Money | None = Field(default=None, description="Amount asked for (decimal string).")
    currency: CurrencyCode | None = Field(default=None, description="ISO 4217 code of `amount`.")
    reason: str | None = Field(
        default=None, description="The customer's reason.", examples=["wrong size"]
    )


class AftersaleStep(Contract):
    """Fields every later after-sales step carries."""

    case_id: str = Field(min_length=1, description=CASE_ID)
    order_id: str = Field(min_length=1, description=ORDER_ID)
    at: AwareDatetime = Field(description="When the step happened.")


class AftersaleApproved(AftersaleStep):
    pass


class AftersaleRejected(AftersaleStep):
    reason: str | None = Field(default=None, description="Why the request was declined.")


class AftersaleReturnShipped(AftersaleStep):
    carrier: str | None = Field(default=None, description="Carrier of the returned parcel.")
    tracking_number: str | None = Field(default=None, description="Its tracking number.")


class AftersaleReturnReceived(AftersaleStep):
    pass


class AftersaleRefunded(AftersaleStep):
    amount: Money | None = Field(default=None, description="Amount refunded (decimal string).")
    currency: CurrencyCode | None = Field(default=None, description="ISO 4217 code of `amount`.")
    method: str | None = Field(
        default=None,
        description="Where the money goes back to.",
        examples=["original", "alipay", "card"],
    )


class AftersaleClosed(AftersaleStep):
    pass


# --- envelopes ------------------------------------------------------------------------------


class OrderCreatedEvent(CloudEvent):
    """An order was placed; it is unpaid until `shop.payment.succeeded`."""

    type: Literal["shop.order.created"] = Field(description="Always `shop.order.created`.")
    data: OrderCreated = Field(description="The event's payload.")


class OrderCancelledEvent(CloudEvent):
    type: Literal["shop.order.cancelled"] = Field(description="Always `shop.order.cancelled`.")
    data: OrderCancelled = Field(description="The event's payload.")


class OrderClosedEvent(CloudEvent):
    """The platform closed the order, e.g. unpaid at `pay_deadline`."""

    type: Literal["shop.order.closed"] = Field(description="Always `shop.order.closed`.")
    data: OrderClosed = Field(description="The event's payload.")


class PaymentSucceededEvent(CloudEvent):
    type: Literal["shop.payment.succeeded"] = Field(description="Always `shop.payment.succeeded`.")
    data: PaymentSucceeded = Field(description="The event's payload.")


class PaymentFailedEvent(CloudEvent):
    type: Literal["shop.payment.failed"] = Field(description="Always `shop.payment.failed`.")
    data: PaymentFailed = Field(description="The event's payload.")


class ShipmentDispatchedEvent(CloudEvent):
    type: Literal["shop.shipment.dispatched"] = Field(
        description="Always `shop.shipment.dispatched`."
    )
    data: ShipmentDispatched = Field(description="The event's payload.")


class ShipmentTrackingEvent(CloudEvent):
    """One carrier scan, normalised."""

    type: Literal["shop.shipment.tracking"] = Field(description="Always `shop.shipment.tracking`.")
    data: ShipmentTracking = Field(description="The event's payload.")


class AftersaleRequestedEvent(CloudEvent):
    type: Literal["shop.aftersale.requested"] = Field(
        description="Always `shop.aftersale.requested`."
    )
    data: AftersaleRequested = Field(description="The event's payload.")


class AftersaleApprovedEvent(CloudEvent):
    type: Literal["shop.aftersale.approved"] = Field(
        description="Always `shop.aftersale.approved`."
    )
    data: AftersaleApproved = Field(description="The event's payload.")


class AftersaleRejectedEvent(CloudEvent):
    type: Literal["shop.aftersale.rejected"] = Field(
        description="Always `shop.aftersale.rejected`."
    )
    data: AftersaleRejected = Field(description="The event's payload.")


class AftersaleReturnShippedEvent(CloudEvent):
    type: Literal["shop.aftersale.return_shipped"] = Field(
        description="Always `shop.aftersale.return_shipped`."
    )
    data: AftersaleReturnShipped = Field(description="The event's payload.")


class AftersaleReturnReceivedEvent(CloudEvent):
    type: Literal["shop.aftersale.return_received"] = Field(
        description="Always `shop.aftersale.return_received`."
    )
    data: AftersaleReturnReceived = Field(description="The event's payload.")


class AftersaleRefundedEvent(CloudEvent):
    type: Literal["shop.aftersale.refunded"] = Field(
        description="Always `shop.aftersale.refunded`."
    )
    data: AftersaleRefunded = Field(description="The event's payload.")


class AftersaleClosedEvent(CloudEvent):
    type: Literal["shop.aftersale.closed"] = Field(description="Always `shop.aftersale.closed`.")
    data: AftersaleClosed = Field(description="The event's payload.")


# What each shop topic carries; decoders tell the types apart by their `type` (codec.py).
OrderEvent = OrderCreatedEvent | OrderCancelledEvent | OrderClosedEvent
PaymentEvent = PaymentSucceededEvent | PaymentFailedEvent
ShipmentEvent = ShipmentDispatchedEvent | ShipmentTrackingEvent
AftersaleEvent = (
    AftersaleRequestedEvent
    | AftersaleApprovedEvent
    | AftersaleRejectedEvent
    | AftersaleReturnShippedEvent
    | AftersaleReturnReceivedEvent
    | AftersaleRefundedEvent
    | AftersaleClosedEvent
)

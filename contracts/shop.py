"""Events the shop platform publishes (platform-contract.md, "Topics and event types")."""

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, EmailStr, Field, NonNegativeInt, PositiveInt

from contracts.envelope import CloudEvent, Contract
from contracts.values import CurrencyCode, Locale, Money, PhoneNumber, TimeZoneName


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
    email: EmailStr | None = Field(default=None, description="E-mail address.")
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
    country: str | None = None
    region: str | None = Field(default=None, description="Province or state.")
    city: str | None = None
    district: str | None = None
    street: str | None = Field(default=None, description="Street, building and unit.")
    postal_code: str | None = None


class Destination(Contract):
    city: str | None = None
    region: str | None = None
    country: str | None = None


# --- shop.orders ----------------------------------------------------------------------------


class OrderCreated(Contract):
    order_id: str = Field(min_length=1, examples=["O-1001"])
    customer: Customer
    items: list[Item] = Field(min_length=1)
    total: Money = Field(description="Amount payable (decimal string).")
    currency: CurrencyCode
    created_at: AwareDatetime
    pay_deadline: AwareDatetime = Field(
        description="When the platform closes the order if it is still unpaid."
    )
    shop_id: str | None = None
    shipping_address: Annotated[ShippingAddress | None, BeforeValidator(_address_from_text)] = None


class OrderCancelled(Contract):
    order_id: str = Field(min_length=1)
    cancelled_at: AwareDatetime
    reason: str | None = None


class OrderClosed(Contract):
    order_id: str = Field(min_length=1)
    closed_at: AwareDatetime
    reason: str | None = Field(default=None, examples=["unpaid_timeout"])


# --- shop.payments --------------------------------------------------------------------------


class PaymentSucceeded(Contract):
    order_id: str = Field(min_length=1)
    paid_at: AwareDatetime
    amount: Money
    currency: CurrencyCode
    payment_id: str | None = None
    method: str | None = Field(default=None, examples=["alipay", "wechat_pay", "card"])


class PaymentFailed(Contract):
    order_id: str = Field(min_length=1)
    failed_at: AwareDatetime
    reason: str | None = None


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
    order_id: str = Field(min_length=1)
    shipment_id: str = Field(min_length=1)
    carrier: str = Field(min_length=1, examples=["SF Express"])
    tracking_number: str = Field(min_length=1)
    dispatched_at: AwareDatetime
    estimated_delivery: EstimatedDelivery | None = None
    service_level: ServiceLevel | None = None
    destination: Destination | None = None


class ShipmentTracking(Contract):
    order_id: str = Field(min_length=1)
    shipment_id: str = Field(min_length=1)
    status: TrackingStatus
    scanned_at: AwareDatetime
    carrier_code: str | None = Field(default=None, description="The carrier's raw status code.")
    description: str | None = None
    location: str | None = None
    estimated_delivery: EstimatedDelivery | None = Field(
        default=None, description="Revised delivery estimate, when the carrier gives one."
    )


# --- shop.aftersales ------------------------------------------------------------------------


class AftersaleKind(StrEnum):
    REFUND_ONLY = "refund_only"
    RETURN_REFUND = "return_refund"
    EXCHANGE = "exchange"


class AftersaleRequested(Contract):
    case_id: str = Field(min_length=1)
    order_id: str = Field(min_length=1)
    kind: AftersaleKind
    requested_at: AwareDatetime
    amount: Money | None = None
    currency: CurrencyCode | None = None
    reason: str | None = None


class AftersaleStep(Contract):
    """Fields every later after-sales step carries."""

    case_id: str = Field(min_length=1)
    order_id: str = Field(min_length=1)
    at: AwareDatetime


class AftersaleApproved(AftersaleStep):
    pass


class AftersaleRejected(AftersaleStep):
    reason: str | None = None


class AftersaleReturnShipped(AftersaleStep):
    carrier: str | None = None
    tracking_number: str | None = None


class AftersaleReturnReceived(AftersaleStep):
    pass


class AftersaleRefunded(AftersaleStep):
    amount: Money | None = None
    currency: CurrencyCode | None = None
    method: str | None = Field(default=None, examples=["original", "alipay", "card"])


class AftersaleClosed(AftersaleStep):
    pass


# --- envelopes ------------------------------------------------------------------------------


class OrderCreatedEvent(CloudEvent):
    """An order was placed; it is unpaid until `shop.payment.succeeded`."""

    type: Literal["shop.order.created"]
    data: OrderCreated


class OrderCancelledEvent(CloudEvent):
    type: Literal["shop.order.cancelled"]
    data: OrderCancelled


class OrderClosedEvent(CloudEvent):
    """The platform closed the order, e.g. unpaid at `pay_deadline`."""

    type: Literal["shop.order.closed"]
    data: OrderClosed


class PaymentSucceededEvent(CloudEvent):
    type: Literal["shop.payment.succeeded"]
    data: PaymentSucceeded


class PaymentFailedEvent(CloudEvent):
    type: Literal["shop.payment.failed"]
    data: PaymentFailed


class ShipmentDispatchedEvent(CloudEvent):
    type: Literal["shop.shipment.dispatched"]
    data: ShipmentDispatched


class ShipmentTrackingEvent(CloudEvent):
    """One carrier scan, normalised."""

    type: Literal["shop.shipment.tracking"]
    data: ShipmentTracking


class AftersaleRequestedEvent(CloudEvent):
    type: Literal["shop.aftersale.requested"]
    data: AftersaleRequested


class AftersaleApprovedEvent(CloudEvent):
    type: Literal["shop.aftersale.approved"]
    data: AftersaleApproved


class AftersaleRejectedEvent(CloudEvent):
    type: Literal["shop.aftersale.rejected"]
    data: AftersaleRejected


class AftersaleReturnShippedEvent(CloudEvent):
    type: Literal["shop.aftersale.return_shipped"]
    data: AftersaleReturnShipped


class AftersaleReturnReceivedEvent(CloudEvent):
    type: Literal["shop.aftersale.return_received"]
    data: AftersaleReturnReceived


class AftersaleRefundedEvent(CloudEvent):
    type: Literal["shop.aftersale.refunded"]
    data: AftersaleRefunded


class AftersaleClosedEvent(CloudEvent):
    type: Literal["shop.aftersale.closed"]
    data: AftersaleClosed


OrderEvent = Annotated[
    OrderCreatedEvent | OrderCancelledEvent | OrderClosedEvent, Field(discriminator="type")
]
PaymentEvent = Annotated[PaymentSucceededEvent | PaymentFailedEvent, Field(discriminator="type")]
ShipmentEvent = Annotated[
    ShipmentDispatchedEvent | ShipmentTrackingEvent, Field(discriminator="type")
]
AftersaleEvent = Annotated[
    AftersaleRequestedEvent
    | AftersaleApprovedEvent
    | AftersaleRejectedEvent
    | AftersaleReturnShippedEvent
    | AftersaleReturnReceivedEvent
    | AftersaleRefundedEvent
    | AftersaleClosedEvent,
    Field(discriminator="type"),
]

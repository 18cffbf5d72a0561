"""Demo traffic: the shop platform's side of a few realistic stories, on a short clock.

Each story is a customer and what happens to their order: paid at once, paid after a
reminder, never paid, cancelled, shipped and delivered, stuck in transit, lost, returned,
refunded late, a return never sent back, a return declined, dispatched late, held up and
then moving again.
Time is compressed: one story minute lasts ``minute_s`` real seconds, and event times are
real times, so the stack's policy (``deploy/demo.toml``) is compressed the same way.
"""

import asyncio
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from contracts.codec import encode, envelope
from contracts.envelope import CloudEvent, Contract
from contracts.shop import (
    AftersaleApproved,
    AftersaleApprovedEvent,
    AftersaleClosed,
    AftersaleClosedEvent,
    AftersaleKind,
    AftersaleRefunded,
    AftersaleRefundedEvent,
    AftersaleRejected,
    AftersaleRejectedEvent,
    AftersaleRequested,
    AftersaleRequestedEvent,
    AftersaleReturnReceived,
    AftersaleReturnReceivedEvent,
    AftersaleReturnShipped,
    AftersaleReturnShippedEvent,
    Customer,
    Destination,
    Item,
    MemberLevel,
    OrderCancelled,
    OrderCancelledEvent,
    OrderClosed,
    OrderClosedEvent,
    OrderCreated,
    OrderCreatedEvent,
    PaymentSucceeded,
    PaymentSucceededEvent,
    ServiceLevel,
    ShipmentDispatched,
    ShipmentDispatchedEvent,
    ShipmentTracking,
    ShipmentTrackingEvent,
    ShippingAddress,
    TrackingStatus,
)
from contracts.topics import Topic
from followup.kafka import TopicNames

log = logging.getLogger(__name__)

_CUSTOMERS = [
    Customer(
        id="C-1001",
        name="王女士",
        phone="+8613812345678",
        member_level=MemberLevel.NONE,
        paid_orders=0,
    ),
    Customer(
        id="C-1002",
        name="李先生",
        phone="+8613912345678",
        member_level=MemberLevel.GOLD,
        paid_orders=12,
        total_spent=Decimal("4860.00"),
    ),
    Customer(
        id="C-1003",
        name="Emma",
        locale="en",
        timezone="Europe/London",
        email="emma@example.com",
        member_level=MemberLevel.SILVER,
        paid_orders=3,
        total_spent=Decimal("320.00"),
    ),
    Customer(
        id="C-1004",
        name="陈小姐",
        phone="+8613712345678",
        paid_orders=5,
        last_paid_at=datetime(2025, 12, 1, tzinfo=UTC),
    ),
    Customer(
        id="C-1005", name="Liam", locale="en", timezone="America/New_York", email="liam@example.com"
    ),
]
_ITEMS = [
    Item(
        sku="COAT-NAVY-M",
        title="羊毛混纺大衣",
        quantity=1,
        unit_price=Decimal("599.00"),
        options={"size": "M", "color": "藏青"},
        stock_left=3,
    ),
    Item(
        sku="SCARF-GREY",
        title="羊绒围巾",
        quantity=2,
        unit_price=Decimal("129.00"),
        options={"color": "浅灰"},
        stock_left=40,
    ),
    Item(
        sku="BOOT-38",
        title="短靴",
        quantity=1,
        unit_price=Decimal("399.00"),
        options={"size": "38"},
        stock_left=2,
    ),
]
# Each customer's own delivery address; the two English-speaking customers buy cross-border.
_ADDRESSES = {
    "C-1001": ShippingAddress(
        recipient="王女士",
        phone="+8613812345678",
        country="CN",
        region="上海市",
        city="上海市",
        district="浦东新区",
        street="世纪大道100号3栋1201室",
    ),
    "C-1002": ShippingAddress(
        recipient="李先生",
        phone="+8613912345678",
        country="CN",
        region="北京市",
        city="北京市",
        district="朝阳区",
        street="建国路88号2号楼1506室",
    ),
    "C-1003": ShippingAddress(
        recipient="Emma Clarke",
        phone="+447700900123",
        country="GB",
        city="London",
        street="Flat 4, 27 Marylebone Lane",
        postal_code="W1U 2NQ",
    ),
    "C-1004": ShippingAddress(
        recipient="陈小姐",
        phone="+8613712345678",
        country="CN",
        region="广东省",
        city="广州市",
        district="天河区",
        street="天河路385号1802室",
    ),
    "C-1005": ShippingAddress(
        recipient="Liam Walsh",
        phone="+12125550147",
        country="US",
        region="NY",
        city="New York",
        street="Apt 12B, 350 West 42nd Street",
        postal_code="10036",
    ),
}


@dataclass(frozen=True)
class Scheduled:
    topic: Topic
    key: str
    event: CloudEvent


class Story:
    """Builds one order's events at story minutes from the start."""

    def __init__(
        self, start: datetime, minute_s: float, order_id: str, customer: Customer, items: list[Item]
    ) -> None:
        self.start = start
        self.minute_s = minute_s
        self.order_id = order_id
        self.customer = customer
        self.items = items
        self.events: list[Scheduled] = []

    def _add(
        self, minute: float, topic: Topic, event_class: type[CloudEvent], data: Contract
    ) -> None:
        source = f"shop-platform/{topic.value.split('.')[1]}"
        event = envelope(event_class, data, source=source, time=self.at(minute))
        self.events.append(Scheduled(topic, self.order_id, event))

    def at(self, minute: float) -> datetime:
        return self.start + timedelta(seconds=minute * self.minute_s)

    def created(self, minute: float, *, deadline_minutes: float) -> "Story":
        total = sum((i.unit_price * i.quantity for i in self.items), Decimal("0.00"))
        self._add(
            minute,
            Topic.ORDERS,
            OrderCreatedEvent,
            OrderCreated(
                order_id=self.order_id,
                customer=self.customer,
                items=self.items,
                total=total,
                currency="CNY",
                created_at=self.at(minute),
                pay_deadline=self.at(minute + deadline_minutes),
                shop_id="S-1",
                shipping_address=_ADDRESSES[self.customer.id],
            ),
        )
        return self

    def paid(self, minute: float) -> "Story":
        total = sum((i.unit_price * i.quantity for i in self.items), Decimal("0.00"))
        self._add(
            minute,
            Topic.PAYMENTS,
            PaymentSucceededEvent,
            PaymentSucceeded(
                order_id=self.order_id,
                paid_at=self.at(minute),
                amount=total,
                currency="CNY",
                payment_id=f"P-{self.order_id}",
                method="alipay",
            ),
        )
        return self

    def cancelled(self, minute: float) -> "Story":
        self._add(
            minute,
            Topic.ORDERS,
            OrderCancelledEvent,
            OrderCancelled(
                order_id=self.order_id, cancelled_at=self.at(minute), reason="changed_mind"
            ),
        )
        return self

    def closed(self, minute: float) -> "Story":
        self._add(
            minute,
            Topic.ORDERS,
            OrderClosedEvent,
            OrderClosed(order_id=self.order_id, closed_at=self.at(minute), reason="unpaid_timeout"),
        )
        return self

    def dispatched(
        self, minute: float, *, service_level: ServiceLevel, eta_minutes: float
    ) -> "Story":
        self._add(
            minute,
            Topic.SHIPMENTS,
            ShipmentDispatchedEvent,
            ShipmentDispatched(
                order_id=self.order_id,
                shipment_id=f"S-{self.order_id}",
                carrier="SF Express",
                tracking_number=f"SF{abs(hash(self.order_id)) % 10**10:010d}",
                dispatched_at=self.at(minute),
                estimated_delivery=self.at(minute + eta_minutes),
                service_level=service_level,
                destination=Destination(city="上海市", region="上海市", country="CN"),
            ),
        )
        return self

    def scan(
        self, minute: float, status: TrackingStatus, location: str, description: str
    ) -> "Story":
        self._add(
            minute,
            Topic.SHIPMENTS,
            ShipmentTrackingEvent,
            ShipmentTracking(
                order_id=self.order_id,
                shipment_id=f"S-{self.order_id}",
                status=status,
                scanned_at=self.at(minute),
                location=location,
                description=description,
            ),
        )
        return self

    def aftersale(
        self,
        minute: float,
        step: str,
        case_id: str,
        *,
        kind: AftersaleKind = AftersaleKind.RETURN_REFUND,
        reason: str = "尺码不合适",
    ) -> "Story":
        """One after-sales step; ``reason`` is the customer's (requested) or the shop's
        (rejected)."""
        when = self.at(minute)
        total = sum((i.unit_price * i.quantity for i in self.items), Decimal("0.00"))
        steps: dict[str, tuple[type[CloudEvent], Contract]] = {
            "requested": (
                AftersaleRequestedEvent,
                AftersaleRequested(
                    case_id=case_id,
                    order_id=self.order_id,
                    kind=kind,
                    requested_at=when,
                    amount=total,
                    currency="CNY",
                    reason=reason,
                ),
            ),
            "approved": (
                AftersaleApprovedEvent,
                AftersaleApproved(case_id=case_id, order_id=self.order_id, at=when),
            ),
            "rejected": (
                AftersaleRejectedEvent,
                AftersaleRejected(case_id=case_id, order_id=self.order_id, at=when, reason=reason),
            ),
            "closed": (
                AftersaleClosedEvent,
                AftersaleClosed(case_id=case_id, order_id=self.order_id, at=when),
            ),
            "return_shipped": (
                AftersaleReturnShippedEvent,
                AftersaleReturnShipped(
                    case_id=case_id,
                    order_id=self.order_id,
                    at=when,
                    carrier="ZTO",
                    tracking_number="ZT123",
                ),
            ),
            "return_received": (
                AftersaleReturnReceivedEvent,
                AftersaleReturnReceived(case_id=case_id, order_id=self.order_id, at=when),
            ),
            "refunded": (
                AftersaleRefundedEvent,
                AftersaleRefunded(
                    case_id=case_id,
                    order_id=self.order_id,
                    at=when,
                    amount=total,
                    currency="CNY",
                    method="alipay",
                ),
            ),
        }
        event_class, data = steps[step]
        self._add(minute, Topic.AFTERSALES, event_class, data)
        return self


def stories(
    start: datetime, minute_s: float, round_number: int, rng: random.Random
) -> Iterator[Story]:
    """One round of stories; deadlines are 4 story minutes, like the demo policy expects."""
    prefix = f"O-{round_number:03d}"
    customers = rng.sample(_CUSTOMERS, k=len(_CUSTOMERS))

    def story(n: int) -> Story:
        items = rng.sample(_ITEMS, k=rng.randint(1, 2))
        return Story(start, minute_s, f"{prefix}{n}", customers[n % len(customers)], items)

    yield (
        story(1)
        .created(0, deadline_minutes=4)
        .paid(0.1)  # paid at once: confirmation only, shipped and delivered on time
        .dispatched(1.0, service_level=ServiceLevel.EXPRESS, eta_minutes=2)
        .scan(2.0, TrackingStatus.DELIVERED, "上海浦东", "已签收")
    )
    yield (
        story(2)
        .created(0.2, deadline_minutes=4)
        .paid(1.2)  # paid after the first reminder, then shipped on time
        .dispatched(1.5, service_level=ServiceLevel.EXPRESS, eta_minutes=2)
        .scan(2.5, TrackingStatus.DELIVERED, "上海浦东", "已签收")
    )
    yield (
        story(3).created(0.3, deadline_minutes=4).closed(4.3)
    )  # never paid: every tier, then closed
    yield story(4).created(0.4, deadline_minutes=4).cancelled(0.45)  # cancelled before any reminder
    yield (
        story(5)
        .created(0.5, deadline_minutes=4)
        .paid(0.6)  # shipped and delivered on time
        .dispatched(1.0, service_level=ServiceLevel.EXPRESS, eta_minutes=2)
        .scan(1.3, TrackingStatus.IN_TRANSIT, "杭州转运中心", "已发出")
        .scan(2.0, TrackingStatus.OUT_FOR_DELIVERY, "上海浦东", "派送中")
        .scan(2.4, TrackingStatus.DELIVERED, "上海浦东", "已签收")
    )
    yield (
        story(6)
        .created(0.6, deadline_minutes=4)
        .paid(0.7)  # stuck in transit: no scans
        .dispatched(1.0, service_level=ServiceLevel.EXPRESS, eta_minutes=2)
        .scan(1.2, TrackingStatus.IN_TRANSIT, "广州转运中心", "已发出")
    )
    yield (
        story(7)
        .created(0.7, deadline_minutes=4)
        .paid(0.8)  # carrier loses the parcel
        .dispatched(1.1, service_level=ServiceLevel.STANDARD, eta_minutes=4)
        .scan(1.5, TrackingStatus.EXCEPTION, "武汉转运中心", "包裹异常")
        .scan(2.5, TrackingStatus.LOST, "武汉转运中心", "包裹丢失")
    )
    yield (
        story(8)
        .created(0.8, deadline_minutes=4)
        .paid(0.9)  # returned for a refund
        .dispatched(1.0, service_level=ServiceLevel.EXPRESS, eta_minutes=1)
        .scan(1.4, TrackingStatus.DELIVERED, "上海浦东", "已签收")
        .aftersale(1.6, "requested", f"R-{prefix}8")
        .aftersale(1.9, "approved", f"R-{prefix}8")
        .aftersale(2.3, "return_shipped", f"R-{prefix}8")
        .aftersale(3.0, "return_received", f"R-{prefix}8")
        .aftersale(3.6, "refunded", f"R-{prefix}8")
        .aftersale(3.7, "closed", f"R-{prefix}8")
    )
    yield (
        story(9)
        .created(0.9, deadline_minutes=4)
        .paid(1.0)  # refund before dispatch, paid late: the shop is chased, the customer told
        .aftersale(
            1.2, "requested", f"R-{prefix}9", kind=AftersaleKind.REFUND_ONLY, reason="不想要了"
        )
        .aftersale(1.5, "approved", f"R-{prefix}9")
        .aftersale(5.0, "refunded", f"R-{prefix}9")
    )
    yield (
        story(10)
        .created(0.9, deadline_minutes=4)
        .paid(1.0)  # return approved but never sent back: reminders, then the window closes
        .dispatched(1.1, service_level=ServiceLevel.EXPRESS, eta_minutes=1)
        .scan(1.4, TrackingStatus.DELIVERED, "上海浦东", "已签收")
        .aftersale(1.6, "requested", f"R-{prefix}10", reason="颜色和图片不一样")
        .aftersale(1.8, "approved", f"R-{prefix}10")
        .aftersale(8.0, "closed", f"R-{prefix}10")
    )
    yield (
        story(11)
        .created(0.9, deadline_minutes=4)
        .paid(1.0)  # a return the shop declines, with its reason and what to do now
        .dispatched(1.1, service_level=ServiceLevel.EXPRESS, eta_minutes=1)
        .scan(1.4, TrackingStatus.DELIVERED, "上海浦东", "已签收")
        .aftersale(1.7, "requested", f"R-{prefix}11", reason="不喜欢")
        .aftersale(2.2, "rejected", f"R-{prefix}11", reason="商品已拆封使用，影响二次销售")
    )
    yield (
        story(9)
        .created(0.85, deadline_minutes=4)
        .paid(0.9)  # the warehouse is slow: dispatch late, then "on its way"
        .dispatched(3.0, service_level=ServiceLevel.EXPRESS, eta_minutes=2)
        .scan(3.3, TrackingStatus.IN_TRANSIT, "杭州转运中心", "已发出")
        .scan(4.0, TrackingStatus.DELIVERED, "上海浦东", "已签收")
    )
    yield (
        story(10)
        .created(0.9, deadline_minutes=4)
        .paid(0.95)  # no scans for a while, then moving again: "back on track"
        .dispatched(1.1, service_level=ServiceLevel.EXPRESS, eta_minutes=4)
        .scan(1.2, TrackingStatus.IN_TRANSIT, "广州转运中心", "已发出")
        .scan(3.8, TrackingStatus.IN_TRANSIT, "南京转运中心", "运输中")
        .scan(4.6, TrackingStatus.DELIVERED, "上海浦东", "已签收")
    )


async def simulate(
    bootstrap: str, topics: TopicNames, *, minute_s: float, rounds: int, seed: int = 7
) -> int:
    """Publish the stories in real time, one round every five story minutes."""
    rng = random.Random(seed)
    start = datetime.now(UTC)
    schedule = sorted(
        (
            event
            for n in range(rounds)
            for story in stories(start + timedelta(seconds=5 * minute_s * n), minute_s, n + 1, rng)
            for event in story.events
        ),
        key=lambda e: e.event.time,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        for item in schedule:
            due = (item.event.time - start).total_seconds()
            await asyncio.sleep(max(0.0, due - (loop.time() - began)))
            await producer.send_and_wait(
                topics(item.topic), encode(item.event), key=item.key.encode()
            )
            log.info("published %s for %s", item.event.type, item.key)
    finally:
        await producer.stop()
    return len(schedule)

"""Decisions turned into commands: kind, template, keys, variables, meta, priority."""

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from contracts.notifications import MessageClass, NotificationKind, Priority
from services.logistics import messages
from services.logistics.policy import (
    Episode,
    Message,
    Order,
    Problem,
    Resolution,
    Rule,
    Shipment,
    Stage,
)
from services.logistics.settings import LogisticsPolicy, Severity

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
H = timedelta(hours=1)
POLICY = LogisticsPolicy()
PARCEL = Shipment(
    "S-1",
    "O-1",
    carrier="SF Express",
    tracking_number="SF1",
    service_level="express",
    dispatched_at=T0,
    promised_delivery="2026-11-25",
    revised_delivery="2026-11-27",
    last_scan_at=T0 + 2 * H,
    last_location="杭州",
    source_event_id="e-9",
    source_event_time=T0 + 2 * H,
)
STALLED = Problem(Rule.STALLED, Severity.YELLOW, T0 + 26 * H, {"hours_without_scan": 24.0})
EPISODE = Episode(1, is_open=True, opened_at=T0 + 26 * H, next_update_at=T0 + 32 * H)


def test_a_stall_notice_names_the_order_and_leaves_the_customer_to_the_notifier() -> None:
    command = messages.shipment_message(
        PARCEL, EPISODE, Message(Stage.NOTICE, STALLED, (STALLED,)), T0 + 26 * H, POLICY
    )
    assert command.idempotency_key == "shipment_delay:S-1:1:notice"
    assert (command.kind, command.template) == (
        NotificationKind.SHIPMENT_DELAY,
        "shipment_delay.stalled",
    )
    assert (command.customer_id, command.locale, command.timezone) == (None, None, None)
    assert command.order_id == "O-1"
    assert command.priority is Priority.HIGH
    assert command.message_class is MessageClass.TRANSACTIONAL
    assert command.expires_at == T0 + 50 * H
    assert command.source_event_id == "e-9"
    assert command.meta == {
        "rule": "stalled",
        "severity": "yellow",
        "stage": "notice",
        "episode": 1,
        "followup": 0,
        "subject": "S-1",
        "problems": ["stalled"],
        "evidence": {"hours_without_scan": 24.0},
    }
    variables = command.variables
    assert variables["expected_delivery"] == "2026-11-27"  # the carrier's revision, ahead
    assert variables["hours_without_scan"] == 24
    assert variables["next_update_at"] == (T0 + 32 * H).isoformat()
    assert (variables["item_title"], variables["item_count"]) == (None, 0)


def test_a_red_update_is_critical_and_keyed_by_rule_and_colour() -> None:
    red = replace(STALLED, severity=Severity.RED)
    command = messages.shipment_message(
        PARCEL, EPISODE, Message(Stage.UPDATE, red, (red,)), T0 + 74 * H, POLICY
    )
    assert command.idempotency_key == "shipment_delay:S-1:1:update:stalled:red"
    assert command.priority is Priority.CRITICAL


def test_closing_messages_by_resolution() -> None:
    closed = replace(EPISODE, is_open=False)
    for resolution, template in (
        (Resolution.BACK_ON_TRACK, "shipment_update.back_on_track"),
        (Resolution.DELIVERED, "shipment_update.delivered"),
        (Resolution.PICKUP, "shipment_update.pickup"),
    ):
        command = messages.shipment_message(
            PARCEL, closed, Message(Stage.CLOSING, None, resolution=resolution), T0, POLICY
        )
        assert command.template == template
        assert command.idempotency_key == "shipment_update:S-1:1:closing"
        assert command.variables["after_delay"] is True
        assert command.meta["resolution"] == resolution.value
        assert command.priority is Priority.NORMAL
    # An estimate already past is not "expected" any more.
    late = messages.shipment_message(
        PARCEL,
        closed,
        Message(Stage.CLOSING, None, resolution=Resolution.BACK_ON_TRACK),
        T0 + 200 * H,
        POLICY,
    )
    assert late.variables["expected_delivery"] is None


def test_the_dispatched_closing_names_the_parcel() -> None:
    order = Order("O-1", paid_at=T0, dispatched_at=T0 + 60 * H)
    command = messages.dispatch_message(
        order,
        replace(EPISODE, is_open=False),
        Message(Stage.CLOSING, None, resolution=Resolution.DISPATCHED),
        T0 + 60 * H,
        POLICY,
        shipment=PARCEL,
    )
    assert command.idempotency_key == "shipment_update:O-1:1:closing"
    assert command.template == "shipment_update.dispatched"
    assert (command.variables["carrier"], command.variables["tracking_number"]) == (
        "SF Express",
        "SF1",
    )


def test_an_ops_escalation_has_no_customer_and_carries_the_evidence() -> None:
    lost = Problem(Rule.LOST, Severity.RED, T0, {"status": "lost"})
    command = messages.ops_escalation(
        subject="S-1",
        order_id="O-1",
        shipment=PARCEL,
        episode=EPISODE,
        problem=lost,
        handover=False,
        source_event_id="e-9",
        source_event_time=T0,
    )
    assert command.kind is NotificationKind.OPS_ESCALATION
    assert command.customer_id is None
    assert command.idempotency_key == "ops_escalation:S-1:1:lost"
    assert command.priority is Priority.CRITICAL
    assert command.variables["evidence"] == {"status": "lost"}
    assert command.expires_at is None


def test_items_are_named_when_the_order_was_seen() -> None:
    command = messages.pickup_message(PARCEL, Episode(), T0, POLICY)
    named = messages.with_items(command, ("羊毛混纺大衣", 2))
    assert (named.variables["item_title"], named.variables["item_count"]) == ("羊毛混纺大衣", 2)
    assert messages.with_items(command, None) is command

"""Messages between our own services: commands to the notifier and its delivery status events."""

from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from contracts.envelope import CloudEvent, Contract
from contracts.values import Locale, TimeZoneName


class NotificationKind(StrEnum):
    """What a message is about; the webhook body's ``kind``."""

    UNPAID_REMINDER = "unpaid_reminder"
    ORDER_CONFIRMATION = "order_confirmation"
    DISPATCH_DELAY = "dispatch_delay"
    SHIPMENT_DELAY = "shipment_delay"
    SHIPMENT_EXCEPTION = "shipment_exception"
    SHIPMENT_UPDATE = "shipment_update"
    AFTERSALE_PROGRESS = "aftersale_progress"
    OPS_ESCALATION = "ops_escalation"
    """For the shop's staff, not the customer: a case a person must look at."""


class MessageClass(StrEnum):
    """Opt-outs and quiet hours treat the two differently."""

    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class Priority(StrEnum):
    """Decides who wins when a customer's contact budget is spent."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class SendNotification(Contract):
    """Command: render and deliver one message, at most once per ``idempotency_key``."""

    idempotency_key: str = Field(
        min_length=1,
        max_length=200,
        description="Permanent identity of this message: a command seen before is never "
        "delivered twice, however often it arrives. Built from natural keys.",
        examples=["unpaid_reminder:O-1001:1"],
    )
    kind: NotificationKind = Field(description="What the message is about.")
    template: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$",
        description="Template name; dotted parts fall back one by one to the kind "
        "(`unpaid_reminder.vip.2` → `unpaid_reminder.vip` → `unpaid_reminder`).",
        examples=["unpaid_reminder.new.1"],
    )
    customer_id: str | None = Field(
        default=None,
        description="Recipient. Producers that do not know the customer (shipment and "
        "after-sales events carry none) leave it out: the notifier resolves it from "
        "`order_id`. None for ops messages.",
    )
    order_id: str | None = Field(default=None, description="The order the message is about.")
    case_id: str | None = Field(default=None, description="After-sales case, when there is one.")
    locale: Locale | None = Field(
        default=None,
        description="Customer's language; none means the recipient's as the notifier knows it. "
        "Templates fall back to the language, then the default locale.",
    )
    timezone: TimeZoneName | None = Field(
        default=None,
        description="Customer's timezone for quiet hours and the times in the text; none "
        "means the recipient's.",
    )
    # Any JSON value; typed `Any` rather than `JsonValue`, whose validation walks every
    # nested value in Python and cost more than the rest of deciding a reminder (bench/).
    # Coming from JSON, the values can only be JSON anyway.
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Values the template renders (any JSON values)."
    )
    meta: dict[str, Any] = Field(
        default_factory=dict,
        description="Why it was sent (tier, segment, rule and evidence); passed through to "
        "the gateway's `meta` so staff can see the reason.",
        examples=[{"tier": 1, "segment": "new"}],
    )
    priority: Priority = Field(
        default=Priority.NORMAL,
        description="Service notices (exceptions, refunds) outrank recovery reminders when a "
        "customer's contact budget is spent.",
    )
    message_class: MessageClass = Field(
        description="Marketing-like (reminders) or transactional (notices about the order)."
    )
    not_before: AwareDatetime | None = Field(default=None, description="Do not send earlier.")
    expires_at: AwareDatetime | None = Field(
        default=None, description="Do not send later; recorded as suppressed instead."
    )
    source_event_id: str | None = Field(
        default=None, description="The shop event this message answers, for tracing."
    )
    source_event_time: AwareDatetime | None = Field(
        default=None, description="When that event happened, for event-to-send latency."
    )


class CancelNotification(Contract):
    """Command: do not send these messages if they have not left yet (e.g. the order was paid)."""

    idempotency_keys: list[str] = Field(default_factory=list, description="Exact messages to drop.")
    order_id: str | None = Field(
        default=None, description="With `kinds`: drop every unsent message of these kinds."
    )
    customer_id: str | None = Field(
        default=None, description="Routes the command to the partition of the customer's sends."
    )
    kinds: list[NotificationKind] = Field(
        default_factory=list, description="Kinds to drop for `order_id`."
    )
    reason: str = Field(
        min_length=1, description="Recorded with each dropped message.", examples=["order_paid"]
    )


class ContactPreference(Contract):
    """Command: a customer opts out of (or back in to) a channel, a class of messages, or both.

    Published by the shop platform when the customer changes their notification settings.
    An opt-in removes exactly the matching opt-out: opting back in to SMS does not undo an
    opt-out of every channel."""

    customer_id: str = Field(min_length=1, description="The customer.", examples=["C-1"])
    channel: Literal["webhook", "sms", "email"] | None = Field(
        default=None, description="The channel; none means every channel."
    )
    message_class: MessageClass | None = Field(
        default=None, description="Marketing or transactional; none means every message."
    )
    opted_out: bool = Field(description="True to stop these messages, false to allow them again.")
    source: str | None = Field(
        default=None,
        description="Where the customer said so, kept with the preference.",
        examples=["app_settings", "sms_reply_TD"],
    )


class DeliveryStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class NotificationStatus(Contract):
    """What became of one message."""

    message_id: str = Field(description="The notifier's id of the message (a UUID).")
    idempotency_key: str = Field(description="The command's idempotency key.")
    kind: NotificationKind = Field(description="What the message was about.")
    status: DeliveryStatus = Field(description="Sent, failed or suppressed.")
    reason: str | None = Field(default=None, description="Why it failed or was suppressed.")
    channel: str | None = Field(
        default=None, description="Channel that carried it.", examples=["webhook", "sms", "email"]
    )
    provider: str | None = Field(default=None, description="Provider within the channel.")
    attempts: int = Field(default=0, ge=0, description="Delivery attempts made.")
    customer_id: str | None = Field(default=None, description="Recipient.")
    order_id: str | None = Field(default=None, description="The order it was about.")
    case_id: str | None = Field(default=None, description="The after-sales case it was about.")
    at: AwareDatetime = Field(description="When the outcome was recorded.")


class SendNotificationCommand(CloudEvent):
    type: Literal["followup.notification.send"] = Field(
        description="Always `followup.notification.send`."
    )
    data: SendNotification = Field(description="The message's payload.")


class CancelNotificationCommand(CloudEvent):
    type: Literal["followup.notification.cancel"] = Field(
        description="Always `followup.notification.cancel`."
    )
    data: CancelNotification = Field(description="The message's payload.")


class ContactPreferenceCommand(CloudEvent):
    type: Literal["followup.notification.preference"] = Field(
        description="Always `followup.notification.preference`."
    )
    data: ContactPreference = Field(description="The message's payload.")


class NotificationSentEvent(CloudEvent):
    type: Literal["followup.notification.sent"] = Field(
        description="Always `followup.notification.sent`."
    )
    data: NotificationStatus = Field(description="The message's payload.")


class NotificationFailedEvent(CloudEvent):
    type: Literal["followup.notification.failed"] = Field(
        description="Always `followup.notification.failed`."
    )
    data: NotificationStatus = Field(description="The message's payload.")


class NotificationSuppressedEvent(CloudEvent):
    type: Literal["followup.notification.suppressed"] = Field(
        description="Always `followup.notification.suppressed`."
    )
    data: NotificationStatus = Field(description="The message's payload.")


# What each of our topics carries; decoders tell the types apart by `type` (codec.py).
NotificationCommand = SendNotificationCommand | CancelNotificationCommand | ContactPreferenceCommand
NotificationStatusEvent = (
    NotificationSentEvent | NotificationFailedEvent | NotificationSuppressedEvent
)

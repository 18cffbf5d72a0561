"""Reminder settings: connections from the environment, policy from ``[reminder]``."""

from datetime import time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from contracts.values import Money
from followup.durations import Duration
from followup.settings import PolicySection, RuntimeSettings


class ReminderSettings(RuntimeSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    http_port: int = Field(default=8001, ge=0, le=65535)
    # A firing batch spends most of its time waiting for PostgreSQL (nine statements): with
    # one claim loop the process and the database each idled a third of the time. Four loops
    # fired 3,396-3,784 reminders/s against 2,452 with one and 2,770 with two (bench/README.md)
    # and still fit the default pool beside the consumer's lanes and the outbox relay.
    timer_workers: int = Field(default=4, ge=1)


class Segment(StrEnum):
    """Who the customer is, which decides the tiers and the wording (domain-notes.md §1)."""

    NEW = "new"
    """No paid order before this one: scarcity (only when stock is low), first-order offer."""
    DORMANT = "dormant"
    """Paid before, but not for a long time: a wake-up tone."""
    VIP = "vip"
    """High RFM score: the member treatment, and the best perks."""
    MEMBER = "member"
    """A member of the shop's programme: items kept, what paying now earns them."""
    RETURNING = "returning"
    """Bought before, not a member, not VIP, not dormant: items kept, no member perks."""


class Coupon(PolicySection):
    """A coupon a tier may carry; the code is the shop's, we only mention it."""

    code: str = Field(min_length=1, description="The code the customer enters or is given.")
    amount: Money = Field(description="Value of the coupon, in the order's currency.")
    min_spend: Money | None = Field(
        default=None, description="Smallest order the coupon applies to; none = any order."
    )


class ReminderTier(PolicySection):
    """When one tier is due: counted from the order's event time, or back from the deadline."""

    after_created: Duration | None = Field(
        default=None, description="Due this long after the order was placed."
    )
    before_deadline: Duration | None = Field(
        default=None, description="Due this long before `pay_deadline`."
    )
    coupon: Coupon | None = Field(
        default=None, description="A coupon mentioned in this tier's message (later tiers)."
    )
    template: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$",
        description="Template name instead of `unpaid_reminder.<segment>.<tier|last>`.",
    )

    @model_validator(mode="after")
    def _exactly_one_anchor(self) -> Self:
        if (self.after_created is None) == (self.before_deadline is None):
            raise ValueError("set exactly one of after_created or before_deadline")
        return self


def _default_tiers() -> list[ReminderTier]:
    return [
        ReminderTier(after_created=timedelta(minutes=15)),
        ReminderTier(after_created=timedelta(hours=3)),
        ReminderTier(before_deadline=timedelta(hours=2)),
    ]


class SegmentPolicy(PolicySection):
    tiers: list[ReminderTier] | None = Field(
        default=None, min_length=1, description="This segment's tiers; none = `reminder.tiers`."
    )


class Segmentation(PolicySection):
    """How a customer's RFM figures (recency, frequency, monetary) become a segment."""

    dormant_after: Duration = Field(
        default=timedelta(days=180),
        description="A customer whose last paid order is older than this is dormant.",
    )
    vip_min_score: int = Field(
        default=13, ge=3, le=15, description="RFM score (3..15) from which a customer is VIP."
    )
    recency_days: list[int] = Field(
        default_factory=lambda: [30, 90, 180, 365],
        min_length=4,
        max_length=4,
        description="Days since the last payment scoring 5, 4, 3, 2 (older or unknown: 1).",
    )
    frequency_orders: list[int] = Field(
        default_factory=lambda: [1, 2, 5, 10],
        min_length=4,
        max_length=4,
        description="Paid orders from which frequency scores 2, 3, 4, 5 (none: 1).",
    )
    monetary_spent: list[Decimal] = Field(
        default_factory=lambda: [Decimal(100), Decimal(500), Decimal(2000), Decimal(5000)],
        min_length=4,
        max_length=4,
        description="Lifetime spend from which monetary scores 2, 3, 4, 5 (less: 1).",
    )

    @model_validator(mode="after")
    def _ascending(self) -> Self:
        for name in ("recency_days", "frequency_orders", "monetary_spent"):
            values = getattr(self, name)
            if list(values) != sorted(values):
                raise ValueError(f"{name} must be in ascending order")
        return self


class QuietHours(PolicySection):
    """No reminder in the customer's night; one due then waits for the morning."""

    enabled: bool = Field(default=True, description="Apply quiet hours at all.")
    start: time = Field(default=time(22, 0), description="Local time the quiet window begins.")
    end: time = Field(default=time(8, 0), description="Local time it ends (may be next day).")
    margin: Duration = Field(
        default=timedelta(minutes=30),
        description="A deferred reminder must still land this long before the deadline, "
        "else it is skipped: a reminder seconds before closing helps nobody.",
    )


class Variant(PolicySection):
    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$", description="Shown in metrics and meta.")
    weight: int = Field(default=1, ge=1, description="Relative share of customers.")
    tiers: list[ReminderTier] | None = Field(
        default=None, min_length=1, description="Tiers for every segment; none = the usual."
    )


class Experiment(PolicySection):
    """Variants of the tier policy, assigned by customer id, and a holdout that gets none."""

    enabled: bool = Field(default=False, description="Off: every customer gets the usual.")
    name: str = Field(
        default="reminder-tiers",
        min_length=1,
        description="Part of the assignment hash: a new name reshuffles customers.",
    )
    holdout: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="Share of customers who receive no reminders, to measure the real lift.",
    )
    variants: list[Variant] = Field(default_factory=list, description="Named tier variants.")

    @model_validator(mode="after")
    def _variants(self) -> Self:
        names = [v.name for v in self.variants]
        if len(names) != len(set(names)):
            raise ValueError("variant names must be unique")
        if "holdout" in names or "none" in names:
            raise ValueError("'holdout' and 'none' are reserved variant names")
        if self.enabled and not self.variants and self.holdout == 0:
            raise ValueError("an enabled experiment needs variants or a holdout share")
        return self


class Confirmation(PolicySection):
    """The order confirmation (订单确认) sent right after payment."""

    enabled: bool = Field(default=True, description="Send order confirmations at all.")
    dispatch_min_days: int = Field(
        default=1, ge=0, description="Working days after payment the parcel leaves at the soonest."
    )
    dispatch_max_days: int = Field(
        default=3, ge=0, description="Working days after payment it leaves at the latest."
    )
    max_delay: Duration = Field(
        default=timedelta(hours=24),
        description="A payment older than this when it arrives (replay) gets no confirmation.",
    )

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.dispatch_min_days > self.dispatch_max_days:
            raise ValueError("dispatch_min_days must not exceed dispatch_max_days")
        return self


class ReminderPolicy(PolicySection):
    tiers: list[ReminderTier] = Field(default_factory=_default_tiers, min_length=1)
    late_grace: Duration = Field(
        default=timedelta(minutes=10),
        description="A tier already overdue by more than this when the order event arrives "
        "(late or replayed event) is skipped, never sent in a burst.",
    )
    segments: dict[Segment, SegmentPolicy] = Field(
        default_factory=dict, description="Per-segment tiers; a segment not listed uses `tiers`."
    )
    segmentation: Segmentation = Field(default_factory=Segmentation)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    min_gap: Duration = Field(
        default=timedelta(hours=2),
        description="Least time between two reminders to one customer, across all orders.",
    )
    low_stock: int = Field(
        default=5, ge=0, description="An item with at most this many left is 'only a few left'."
    )
    hold_stock_for: Duration = Field(
        default=timedelta(hours=1),
        description="New customers are offered to have stock held this long on request; 0 = no.",
    )
    points_per_unit: Decimal = Field(
        default=Decimal(1),
        ge=0,
        description="Member points earned per unit of currency paid; 0 = do not mention points.",
    )
    experiment: Experiment = Field(default_factory=Experiment)
    confirmation: Confirmation = Field(default_factory=Confirmation)

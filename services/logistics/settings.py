"""Logistics settings: connections from the environment, policy from ``[logistics]``.

Every threshold of issue 4 is here with its default; ``deploy/followup.toml`` documents them
for shop staff.
"""

from datetime import date, time, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from contracts.shop import ServiceLevel
from contracts.values import TimeZoneName
from followup.durations import Duration
from followup.settings import PolicySection, RuntimeSettings

# The seeds' promise: an open problem gets visible progress at least once a day.
MAX_FOLLOWUP_INTERVAL = timedelta(hours=24)


class LogisticsSettings(RuntimeSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    http_port: int = Field(default=8002, ge=0, le=65535)
    # Tracking scans come as a firehose and none is urgent to the second (the tightest
    # threshold is hours): larger batches in more lanes take a backlog 20-25 % faster
    # (bench/README.md), where the notifier keeps the smaller ones for its latency.
    kafka_batch_max_records: int = Field(default=2_000, ge=1)
    kafka_batch_lanes: int = Field(default=4, ge=1)


class Severity(StrEnum):
    """The seeds' three colours (三色法则)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.GREEN: 0, Severity.YELLOW: 1, Severity.RED: 2}


class CarrierException(StrEnum):
    """Tracking statuses that are a problem in themselves and act at once."""

    DELIVERY_FAILED = "delivery_failed"
    CUSTOMS_HOLD = "customs_hold"
    EXCEPTION = "exception"
    RETURNED_TO_SENDER = "returned_to_sender"
    LOST = "lost"


def _default_exception_severity() -> dict[CarrierException, Severity]:
    return {
        CarrierException.DELIVERY_FAILED: Severity.YELLOW,
        CarrierException.CUSTOMS_HOLD: Severity.YELLOW,
        CarrierException.EXCEPTION: Severity.YELLOW,
        CarrierException.RETURNED_TO_SENDER: Severity.RED,
        CarrierException.LOST: Severity.RED,
    }


def _stalled_after() -> dict[ServiceLevel, timedelta]:
    return {ServiceLevel.EXPRESS: timedelta(hours=24), ServiceLevel.STANDARD: timedelta(hours=48)}


def _stalled_red_after() -> dict[ServiceLevel, timedelta]:
    return {ServiceLevel.EXPRESS: timedelta(hours=72), ServiceLevel.STANDARD: timedelta(hours=120)}


class CarrierPolicy(PolicySection):
    """One carrier's own stall thresholds; a service level left out keeps the default."""

    stalled_after: dict[ServiceLevel, Duration] = Field(
        default_factory=dict, description="No scan for this long: stalled (yellow)."
    )
    stalled_red_after: dict[ServiceLevel, Duration] = Field(
        default_factory=dict, description="No scan for this long: stalled (red), escalated."
    )


class DispatchPolicy(PolicySection):
    """When a paid order must have left the warehouse."""

    working_days: int = Field(
        default=2, ge=1, le=30, description="Dispatched within this many working days of payment."
    )
    red_after_working_days: int = Field(
        default=5, ge=1, le=60, description="Still not dispatched after this many: red, escalated."
    )
    within: Duration | None = Field(
        default=None,
        description="Instead of working days, a promise in clock time (e.g. '48h'); "
        "also what the demo uses, since working days cannot be compressed.",
    )
    red_within: Duration | None = Field(
        default=None, description="With `within`: red after this long (default 2.5 × within)."
    )
    calendar: Literal["cn", "weekdays"] = Field(
        default="cn",
        description="'cn': mainland China public holidays and make-up workdays (the "
        "chinese-calendar library); 'weekdays': Monday to Friday.",
    )
    extra_holidays: list[date] = Field(
        default_factory=list, description="Days the warehouse is closed besides the calendar's."
    )
    extra_workdays: list[date] = Field(
        default_factory=list,
        description="Days the warehouse works although the calendar says rest (also how to "
        "add a year the library does not cover yet).",
    )

    @model_validator(mode="after")
    def _red_after_the_promise(self) -> Self:
        if self.red_after_working_days <= self.working_days:
            raise ValueError("red_after_working_days must be greater than working_days")
        if self.within is not None and self.red_within is not None:
            if self.red_within <= self.within:
                raise ValueError("red_within must be longer than within")
        elif self.red_within is not None:
            raise ValueError(
                "red_within needs within; with working days use red_after_working_days"
            )
        return self

    @property
    def red_clock_time(self) -> timedelta | None:
        if self.within is None:
            return None
        return self.red_within or self.within * 2.5


class LogisticsPolicy(PolicySection):
    """Detection thresholds, episode cadence and wording switches of the logistics service."""

    timezone: TimeZoneName = Field(
        default="Asia/Shanghai",
        description="The shop's timezone: working days, and the end of a promised delivery day.",
    )
    shop_timezones: dict[str, TimeZoneName] = Field(
        default_factory=dict, description="Per shop id (order.created's shop_id), if they differ."
    )
    dispatch: DispatchPolicy = Field(default_factory=DispatchPolicy)
    default_service_level: ServiceLevel = Field(
        default=ServiceLevel.STANDARD,
        description="Thresholds for shipments whose service level is not (yet) known.",
    )
    stalled_after: dict[ServiceLevel, Duration] = Field(
        default_factory=_stalled_after,
        description="No scan for this long (from the last scan, else from dispatch): stalled.",
    )
    stalled_red_after: dict[ServiceLevel, Duration] = Field(
        default_factory=_stalled_red_after,
        description="No scan for this long: stalled past the long threshold (red).",
    )
    carriers: dict[str, CarrierPolicy] = Field(
        default_factory=dict, description="Per carrier name (case-insensitive) overrides."
    )
    late_grace: Duration = Field(
        default=timedelta(hours=12),
        description="Late when not delivered by the estimate plus this (a date-only estimate "
        "counts until the end of that day).",
    )
    exception_severity: dict[CarrierException, Severity] = Field(
        default_factory=_default_exception_severity,
        description="Colour of each carrier exception.",
    )
    red_after_failed_attempts: int = Field(
        default=2, ge=1, description="This many failed delivery attempts are red."
    )
    first_followup_after: Duration = Field(
        default=timedelta(hours=6),
        description="First follow-up of a problem: the same day, as the first notice promises.",
    )
    followup_every: Duration = Field(
        default=timedelta(hours=24), description="Later follow-ups while the problem lasts."
    )
    min_gap: Duration = Field(
        default=timedelta(hours=2),
        description="Least time between two messages about one problem (red news and the "
        "closing message are never held back).",
    )
    updates_from: time = Field(
        default=time(8, 0),
        description="Promised update times fall in the shop's daytime, from this time ...",
    )
    updates_until: time = Field(
        default=time(22, 0), description="... until this time (shop's timezone)."
    )
    max_followups: int = Field(
        default=7,
        ge=1,
        description="After this many follow-ups a person takes over (ops escalation).",
    )
    promise_expedite: bool = Field(
        default=True,
        description="Messages say the carrier (or warehouse) was asked to expedite; turn off "
        "if nobody at the shop does that.",
    )
    progress_updates: bool = Field(
        default=False, description="On-time progress messages ('your parcel is in <city>')."
    )
    progress_min_interval: Duration = Field(
        default=timedelta(hours=12), description="Least time between two progress messages."
    )
    ignore_older_than: Duration = Field(
        default=timedelta(days=30),
        description="Orders paid or shipments dispatched longer ago are tracked but never "
        "notified (a replayed topic must not apologise for last month).",
    )

    @model_validator(mode="after")
    def _cadence(self) -> Self:
        for name in ("first_followup_after", "followup_every"):
            value: timedelta = getattr(self, name)
            if value > MAX_FOLLOWUP_INTERVAL:
                raise ValueError(
                    f"{name} must be at most 24h: an open problem gets an update at least daily"
                )
            if value < self.min_gap:
                raise ValueError(f"{name} must not be shorter than min_gap")
        for level in ServiceLevel:
            if level not in self.stalled_after or level not in self.stalled_red_after:
                raise ValueError(f"stalled_after and stalled_red_after need '{level.value}'")
            if self.stalled_red_after[level] <= self.stalled_after[level]:
                raise ValueError(f"stalled_red_after.{level.value} must exceed stalled_after")
        if self.updates_from >= self.updates_until:
            raise ValueError("updates_from must be earlier than updates_until")
        missing = set(CarrierException) - set(self.exception_severity)
        if missing:
            raise ValueError(f"exception_severity lacks {', '.join(sorted(missing))}")
        return self

    def shop_timezone(self, shop_id: str | None) -> str:
        return self.shop_timezones.get(shop_id or "", self.timezone)

    def stall_thresholds(
        self, carrier: str | None, service_level: str | None
    ) -> tuple[timedelta, timedelta]:
        """(stalled, stalled red) for a carrier and service level, defaults filled in."""
        key = (carrier, service_level)
        # Asked for every shipment decided, so remembered per carrier and level.
        table = self.stall_table
        if (found := table.get(key)) is not None:
            return found
        level = ServiceLevel(service_level) if service_level else self.default_service_level
        carriers = {name.casefold(): policy for name, policy in self.carriers.items()}
        own = carriers.get((carrier or "").casefold())
        yellow = (own.stalled_after.get(level) if own else None) or self.stalled_after[level]
        red = (own.stalled_red_after.get(level) if own else None) or self.stalled_red_after[level]
        table[key] = (yellow, max(red, yellow))
        return table[key]

    @cached_property
    def stall_table(self) -> dict[tuple[str | None, str | None], tuple[timedelta, timedelta]]:
        """Thresholds already looked up, per (carrier, service level)."""
        return {}

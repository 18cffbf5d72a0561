"""Reminder settings: connections from the environment, policy from ``[reminder]``."""

from datetime import timedelta
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from followup.durations import Duration
from followup.settings import PolicySection, RuntimeSettings


class ReminderSettings(RuntimeSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    http_port: int = Field(default=8001, ge=0, le=65535)


class ReminderTier(PolicySection):
    """When one tier is due: counted from the order's event time, or back from the deadline."""

    after_created: Duration | None = Field(
        default=None, description="Due this long after the order was placed."
    )
    before_deadline: Duration | None = Field(
        default=None, description="Due this long before `pay_deadline`."
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


class ReminderPolicy(PolicySection):
    tiers: list[ReminderTier] = Field(default_factory=_default_tiers, min_length=1)
    late_grace: Duration = Field(
        default=timedelta(minutes=10),
        description="A tier already overdue by more than this when the order event arrives "
        "(late or replayed event) is skipped, never sent in a burst.",
    )

"""After-sales settings: connections from the environment, policy from ``[aftersales]``."""

from datetime import timedelta
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from followup.durations import Duration
from followup.settings import PolicySection, RuntimeSettings


class AftersalesSettings(RuntimeSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    http_port: int = Field(default=8003, ge=0, le=65535)


def _default_refund_arrival() -> dict[str, timedelta]:
    # What Chinese payment providers tell customers: wallets credit a refund within minutes to
    # a couple of hours, bank cards take up to about a week (banks count working days).
    return {
        "alipay": timedelta(hours=2),
        "wechat_pay": timedelta(hours=2),
        "balance": timedelta(hours=1),
        "card": timedelta(days=7),
        "bank_transfer": timedelta(days=3),
    }


class AftersalesPolicy(PolicySection):
    """The shop's promises (timers), the customer's return window, and message timing."""

    first_answer_within: Duration = Field(
        default=timedelta(hours=12),
        gt=timedelta(0),
        description="Promise: a request is approved or rejected this long after it was filed.",
    )
    refund_within: Duration = Field(
        default=timedelta(hours=24),
        gt=timedelta(0),
        description="Promise: the refund is paid this long after the returned item arrived "
        "(return_refund) or after approval (refund_only).",
    )
    replacement_within: Duration = Field(
        default=timedelta(hours=48),
        gt=timedelta(0),
        description="Promise: an exchange is completed (case closed) this long after the "
        "returned item arrived.",
    )
    progress_every: Duration = Field(
        default=timedelta(hours=24),
        gt=timedelta(0),
        description="Promise: while the shop (or the carrier bringing a return) has the next "
        "step, the customer hears something at least this often; silence this long sends a "
        "'still on it' message and counts as a stall.",
    )
    escalate_stalls: bool = Field(
        default=True,
        description="Escalate a stalled case to operations, like a broken deadline.",
    )
    return_window: Duration = Field(
        default=timedelta(days=7),
        gt=timedelta(0),
        description="After approval of a return or exchange, the customer has this long to "
        "send the item back.",
    )
    return_reminder_after: Duration = Field(
        default=timedelta(days=3),
        gt=timedelta(0),
        description="An approved return not shipped this long after approval gets a reminder.",
    )
    final_reminder_before: Duration = Field(
        default=timedelta(days=1),
        gt=timedelta(0),
        description="The last reminder goes out this long before the return window closes.",
    )
    reopen_window: Duration = Field(
        default=timedelta(days=15),
        description="The closing message says the customer can reopen the case until then.",
    )
    stale_after: Duration = Field(
        default=timedelta(days=2),
        gt=timedelta(0),
        description="A step older than this when it arrives (a backlog or a replayed history) "
        "updates the case but sends no message and starts no promise.",
    )
    refund_arrival: dict[str, Duration] = Field(
        default_factory=_default_refund_arrival,
        description="How long a refund typically takes to reach the customer, by payment "
        "method; quoted in the refund message.",
    )
    refund_arrival_default: Duration = Field(
        default=timedelta(days=3), description="For payment methods not listed above."
    )
    order_facts_retention: Duration = Field(
        default=timedelta(days=180),
        gt=timedelta(0),
        description="Order details (items, payment method) kept for naming them in messages; "
        "older orders without an after-sales case are forgotten.",
    )

    @model_validator(mode="after")
    def _reminders_inside_the_window(self) -> Self:
        if self.final_reminder_before >= self.return_window:
            raise ValueError("final_reminder_before must be shorter than return_window")
        return self

    def refund_arrival_for(self, method: str | None) -> timedelta:
        if method is None:
            return self.refund_arrival_default
        return self.refund_arrival.get(method, self.refund_arrival_default)

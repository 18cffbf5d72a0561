"""Notifier settings: provider endpoints and secrets from the environment only, business rules
from the ``[notifier]`` section of the policy file."""

from datetime import time, timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from contracts.notifications import MessageClass, NotificationKind, Priority
from contracts.values import Locale, TimeZoneName
from followup.durations import Duration
from followup.settings import PolicySection, RuntimeSettings

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx", "todo"}
_MIN_SECRET_CHARS = 16

ChannelName = Literal["webhook", "sms", "email", "ops"]
OpsBot = Literal["dingtalk", "wecom", "feishu", "slack"]


def _check_secret(variable: str, secret: SecretStr | None, *, needed_by: str) -> None:
    if secret is None:
        raise ValueError(f"{variable} is required when {needed_by} is set")
    value = secret.get_secret_value()
    if value.lower() in _PLACEHOLDER_SECRETS or len(value) < _MIN_SECRET_CHARS:
        raise ValueError(
            f"{variable} looks like a placeholder: use the real secret (at least "
            f"{_MIN_SECRET_CHARS} characters), e.g. `openssl rand -hex 32` for a shared secret"
        )


class NotifierSettings(RuntimeSettings):
    """Every endpoint and secret of every provider. A channel is configured when its primary
    provider's variables are set; a ``*_BACKUP_*`` provider is its secondary."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    http_port: int = Field(default=8004, ge=0, le=65535)
    # Every message ends in a status event through the outbox; smaller relay batches keep
    # each one from holding the event loop long, which the delivery latency would feel.
    outbox_batch_size: int = Field(default=100, ge=1)
    notifier_webhook_url: str | None = Field(
        default=None, description="The shop gateway's endpoint for the webhook channel."
    )
    notifier_webhook_secret: SecretStr | None = Field(
        default=None, description="Shared secret for the X-Signature HMAC of webhook bodies."
    )
    notifier_webhook_backup_url: str | None = Field(
        default=None,
        description="A second gateway endpoint (same contract and secret), used while the "
        "first keeps failing.",
    )
    notifier_templates_dir: Path | None = Field(
        default=None,
        description="The shop's own templates (<locale>/<name>.toml); they win over ours.",
    )
    notifier_dry_run: bool = Field(
        default=False, description="Render and log every message, send nothing."
    )

    notifier_twilio_account_sid: str | None = Field(
        default=None, description="Twilio Account SID (AC…): enables the SMS channel."
    )
    notifier_twilio_auth_token: SecretStr | None = Field(
        default=None, description="Twilio Auth Token (HTTP Basic password)."
    )
    notifier_twilio_from: str | None = Field(
        default=None,
        description="Sender: an E.164 Twilio number, or a Messaging Service SID (MG…).",
    )
    notifier_twilio_api_url: str = Field(
        default="https://api.twilio.com",
        description="Twilio REST base URL (a regional edge, or a local stand-in in tests).",
    )
    notifier_twilio_backup_account_sid: str | None = Field(
        default=None, description="A second Twilio account (e.g. another region): SMS backup."
    )
    notifier_twilio_backup_auth_token: SecretStr | None = None
    notifier_twilio_backup_from: str | None = None
    notifier_twilio_backup_api_url: str = "https://api.twilio.com"

    notifier_smtp_url: str | None = Field(
        default=None,
        description="SMTP server: smtp://user:pass@host:587 (STARTTLS) or smtps://…:465; "
        "enables the e-mail channel.",
    )
    notifier_smtp_backup_url: str | None = Field(
        default=None, description="A second SMTP server, used while the first keeps failing."
    )
    notifier_email_from: str | None = Field(
        default=None, description="From address of e-mails, e.g. 'Shop <service@shop.example>'."
    )

    notifier_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for GET /preferences (the platform reads a customer's "
        "opt-outs); the endpoint exists only when it is set.",
    )
    notifier_dingtalk_url: str | None = Field(
        default=None, description="DingTalk group robot webhook (…/robot/send?access_token=…)."
    )
    notifier_dingtalk_secret: SecretStr | None = Field(
        default=None, description="The robot's signing secret (SEC…), for timestamp+sign."
    )
    notifier_wecom_url: str | None = Field(
        default=None, description="WeCom group robot webhook (…/cgi-bin/webhook/send?key=…)."
    )
    notifier_feishu_url: str | None = Field(
        default=None, description="Feishu/Lark custom bot webhook (…/open-apis/bot/v2/hook/…)."
    )
    notifier_feishu_secret: SecretStr | None = Field(
        default=None, description="The Feishu bot's signature secret, when signing is on."
    )
    notifier_slack_url: str | None = Field(
        default=None, description="Slack incoming webhook (https://hooks.slack.com/services/…)."
    )

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        if self.notifier_webhook_url or self.notifier_webhook_backup_url:
            _check_secret(
                "NOTIFIER_WEBHOOK_SECRET",
                self.notifier_webhook_secret,
                needed_by="NOTIFIER_WEBHOOK_URL (the gateway verifies X-Signature with it)",
            )
        if self.notifier_webhook_backup_url and not self.notifier_webhook_url:
            raise ValueError("NOTIFIER_WEBHOOK_BACKUP_URL needs NOTIFIER_WEBHOOK_URL as well")
        for prefix, sid, token, sender in (
            (
                "NOTIFIER_TWILIO",
                self.notifier_twilio_account_sid,
                self.notifier_twilio_auth_token,
                self.notifier_twilio_from,
            ),
            (
                "NOTIFIER_TWILIO_BACKUP",
                self.notifier_twilio_backup_account_sid,
                self.notifier_twilio_backup_auth_token,
                self.notifier_twilio_backup_from,
            ),
        ):
            if sid is None:
                continue
            if token is None or not sender:
                raise ValueError(
                    f"{prefix}_ACCOUNT_SID is set: set {prefix}_AUTH_TOKEN and {prefix}_FROM too"
                )
        if self.notifier_twilio_backup_account_sid and not self.notifier_twilio_account_sid:
            raise ValueError("NOTIFIER_TWILIO_BACKUP_ACCOUNT_SID needs the primary account too")
        if (self.notifier_smtp_url or self.notifier_smtp_backup_url) and not (
            self.notifier_email_from
        ):
            raise ValueError("NOTIFIER_SMTP_URL is set: set NOTIFIER_EMAIL_FROM too")
        if self.notifier_api_token is not None:
            _check_secret("NOTIFIER_API_TOKEN", self.notifier_api_token, needed_by="it")
        if self.notifier_dingtalk_url and self.notifier_dingtalk_secret is None:
            raise ValueError(
                "NOTIFIER_DINGTALK_SECRET is required with NOTIFIER_DINGTALK_URL: turn on "
                "'加签' for the robot and copy its SEC… secret"
            )
        return self


class RouteTable(PolicySection):
    """Per kind, the channels to try in order; the first that delivers wins."""

    model_config = PolicySection.model_config | {"extra": "allow"}

    default: list[ChannelName] = Field(
        default=["webhook", "sms", "email"],
        min_length=1,
        description="Customer messages of a kind without its own list.",
    )
    ops_escalation: list[ChannelName] = Field(
        default=["ops", "webhook"], min_length=1, description="Messages for the shop's staff."
    )

    @model_validator(mode="after")
    def _known_kinds(self) -> Self:
        kinds = {k.value for k in NotificationKind}
        for key, value in (self.model_extra or {}).items():
            if key not in kinds:
                raise ValueError(f"unknown kind {key!r}; kinds are {', '.join(sorted(kinds))}")
            channels = value if isinstance(value, list) else [value]
            unknown = [c for c in channels if c not in ("webhook", "sms", "email", "ops")]
            if unknown or not channels:
                raise ValueError(f"{key}: channels are webhook, sms, email, ops (given {value!r})")
        return self

    def channels_for(self, kind: str) -> list[str]:
        extra = self.model_extra or {}
        if kind in extra:
            return list(extra[kind])
        if kind == NotificationKind.OPS_ESCALATION.value:
            return list(self.ops_escalation)
        return list(self.default)


class QuietHours(PolicySection):
    start: time = Field(default=time(21, 0), description="Local time quiet hours begin.")
    end: time = Field(default=time(9, 0), description="Local time they end (next day if ≤ start).")
    classes: list[MessageClass] = Field(
        default=[MessageClass.MARKETING],
        description="Message classes held back during quiet hours; add 'transactional' to "
        "hold order notices too. Critical messages are never held.",
    )


class ContactBudget(PolicySection):
    limit: int = Field(
        default=4, ge=1, description="Messages per customer per window, across all services."
    )
    window: Duration = Field(default=timedelta(hours=24), description="The rolling window.")
    reserved_for_service: int = Field(
        default=1,
        ge=0,
        description="Slots low-priority messages (recovery reminders) may not use, so a "
        "service notice still gets through.",
    )
    exempt: list[Priority] = Field(
        default=[Priority.CRITICAL],
        description="Priorities sent even over budget (they still count).",
    )

    @model_validator(mode="after")
    def _reserve_below_limit(self) -> Self:
        if self.reserved_for_service >= self.limit:
            raise ValueError("reserved_for_service must be smaller than limit")
        return self


class CircuitBreakerPolicy(PolicySection):
    failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open a provider's circuit."
    )
    cooldown: Duration = Field(
        default=timedelta(seconds=30),
        description="How long an open circuit skips the provider before one trial call.",
    )


SEED_BANNED_PHRASES = [
    # domain-notes.md §4, and the same in English
    "我们规定",
    "不可能",
    "你自己没看清楚",
    "您自己没看清楚",
    "those are our rules",
    "that's our policy",
    "impossible",
    "you did not read",
    "you didn't read",
    "your own fault",
]


class TemplateRules(PolicySection):
    """What `followup templates check` enforces (domain-notes.md §4)."""

    banned_phrases: list[str] = Field(
        default=SEED_BANNED_PHRASES,
        description="Never in any message (case-insensitive), in every language.",
    )
    extra_banned_phrases: list[str] = Field(
        default=[], description="Added to the list above, for a shop's own words to avoid."
    )
    apology_required: list[str] = Field(
        default=[
            "dispatch_delay",
            "shipment_delay",
            "shipment_exception",
            "aftersale_progress.stalled",
        ],
        description="Templates whose name is, or starts with, one of these must open with an "
        "apology (delay, exception and stalled-case messages).",
    )
    required_locales: list[Locale] = Field(
        default=["zh-CN", "en"], description="Every template must exist in each of these."
    )
    max_sms_segments: int = Field(
        default=2, ge=1, description="SMS length budget, in segments of the rendered sample."
    )


class NotifierPolicy(PolicySection):
    default_locale: Locale = Field(
        default="zh-CN", description="Template language when the customer's has none."
    )
    default_timezone: TimeZoneName = Field(
        default="Asia/Shanghai", description="Timezone when the customer's is not known."
    )
    ops_locale: Locale = Field(default="zh-CN", description="Language of staff messages.")
    concurrency: int = Field(default=64, ge=1, description="Deliveries in flight at once.")
    claim_batch: int = Field(
        default=200, ge=1, description="Messages claimed from the queue per transaction."
    )
    claimers: int = Field(
        default=2,
        ge=1,
        description="Claims of the queue running side by side, so sends go on while one "
        "waits for PostgreSQL.",
    )
    delivery_processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes of their own that deliver from the queue, to use more than one "
        "core (one sends about 1,500 messages/s); each has this `concurrency` and these "
        "`claimers`. 0: the service's own process delivers.",
    )
    max_attempts: int = Field(default=8, ge=1, description="Tries before a message fails.")
    max_age: Duration = Field(
        default=timedelta(hours=24), description="A message not delivered by then fails."
    )
    retry_base: Duration = Field(default=timedelta(seconds=2))
    retry_max: Duration = Field(default=timedelta(minutes=10))
    lease: Duration = Field(
        default=timedelta(seconds=60),
        description="A claimed message not finished by then (crashed worker) is tried again.",
    )
    request_timeout: Duration = Field(default=timedelta(seconds=10))
    hold_for_recipient: Duration = Field(
        default=timedelta(hours=24),
        description="How long a message whose order is not known yet waits for order.created "
        "(never past its own expiry); then it is suppressed as recipient_unknown.",
    )
    routes: RouteTable = Field(default_factory=RouteTable)
    ops_bots: list[OpsBot] = Field(
        default=["dingtalk", "wecom", "feishu", "slack"],
        description="Order of preference of the configured chat bots: the first is the ops "
        "channel's primary provider, the next its secondary.",
    )
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    contact_budget: ContactBudget = Field(default_factory=ContactBudget)
    circuit_breaker: CircuitBreakerPolicy = Field(default_factory=CircuitBreakerPolicy)
    templates: TemplateRules = Field(default_factory=TemplateRules)

    @field_validator("ops_bots")
    @classmethod
    def _distinct(cls, bots: list[str]) -> list[str]:
        if len(set(bots)) != len(bots):
            raise ValueError("list each bot once")
        return bots

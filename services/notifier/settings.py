"""Notifier settings: channel URLs and secrets from the environment, policy from ``[notifier]``."""

from datetime import timedelta
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from contracts.values import Locale, TimeZoneName
from followup.durations import Duration
from followup.settings import PolicySection, RuntimeSettings

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx", "todo"}
_MIN_SECRET_CHARS = 16


class NotifierSettings(RuntimeSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    http_port: int = Field(default=8004, ge=0, le=65535)
    notifier_webhook_url: str | None = Field(
        default=None, description="The shop gateway's endpoint for the webhook channel."
    )
    notifier_webhook_secret: SecretStr | None = Field(
        default=None, description="Shared secret for the X-Signature HMAC of webhook bodies."
    )
    notifier_templates_dir: Path | None = Field(
        default=None,
        description="The shop's own templates (<locale>/<name>.toml); they win over ours.",
    )
    notifier_dry_run: bool = Field(
        default=False, description="Render and log every message, send nothing."
    )

    @model_validator(mode="after")
    def _webhook_secret(self) -> Self:
        if self.notifier_webhook_url is None:
            return self
        if self.notifier_webhook_secret is None:
            raise ValueError(
                "NOTIFIER_WEBHOOK_SECRET is required when NOTIFIER_WEBHOOK_URL is set: "
                "the gateway verifies X-Signature with it"
            )
        secret = self.notifier_webhook_secret.get_secret_value()
        if secret.lower() in _PLACEHOLDER_SECRETS or len(secret) < _MIN_SECRET_CHARS:
            raise ValueError(
                f"NOTIFIER_WEBHOOK_SECRET looks like a placeholder: use at least "
                f"{_MIN_SECRET_CHARS} random characters, e.g. `openssl rand -hex 32`"
            )
        return self


class NotifierPolicy(PolicySection):
    default_locale: Locale = Field(
        default="zh-CN", description="Template language when the customer's has none."
    )
    default_timezone: TimeZoneName = Field(
        default="Asia/Shanghai", description="Timezone when the customer's is not known."
    )
    concurrency: int = Field(default=64, ge=1, description="Deliveries in flight at once.")
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

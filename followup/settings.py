"""Connection settings from the environment (or ``.env``), business policy from one TOML file."""

import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POLICY_FILE = Path("followup.toml")

P = TypeVar("P", bound=BaseModel)


class ConfigError(Exception):
    """A configuration problem a person must fix; the message names the field and the fix."""


class RuntimeSettings(BaseSettings):
    """Settings every service reads. Each field is read from the environment variable of the
    same name in upper case (``kafka_bootstrap_servers`` -> ``KAFKA_BOOTSTRAP_SERVERS``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str | None = Field(
        default=None, description="Kafka brokers, comma separated, e.g. 'kafka:9092'."
    )
    kafka_topic_prefix: str = Field(
        default="", description="Prefix for every topic name, e.g. 'staging.'."
    )
    kafka_topic_partitions: int = Field(
        default=3, ge=1, description="Partitions per topic when the stack creates topics."
    )
    kafka_idempotent_producer: bool = Field(
        default=True,
        description="Idempotent producer (acks=all either way). The embedded broker refuses it, "
        "so `followup up` turns it off there.",
    )
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    kafka_batch_max_records: int = Field(
        default=1_000,
        ge=1,
        description="Most records fetched and committed as one batch (one commit of offsets "
        "per batch; its lanes are the transactions).",
    )
    kafka_batch_timeout_ms: int = Field(default=100, ge=0)
    kafka_batch_lanes: int = Field(
        default=2,
        ge=1,
        description="Parts of each fetched batch, split by record key, stored side by side in "
        "their own transactions: one part's database wait overlaps the next one's decoding.",
    )

    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN, e.g. postgresql://user:pass@db:5432/followup."
    )
    database_pool_size: int = Field(default=10, ge=2)
    database_connect_timeout_s: float = Field(
        default=60.0, gt=0, description="How long start-up waits for PostgreSQL to accept."
    )

    followup_policy_file: Path | None = Field(
        default=None, description="Policy file; default ./followup.toml when it exists."
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    timer_poll_interval_s: float = Field(
        default=0.5, gt=0, description="Longest a due timer waits when a wake-up is missed."
    )
    timer_batch_size: int = Field(default=500, ge=1)
    timer_workers: int = Field(
        default=1,
        ge=1,
        description="Timer batches claimed and handled side by side in one process.",
    )
    timer_max_attempts: int = Field(
        default=10, ge=1, description="Failures before a timer is parked for a person to inspect."
    )
    outbox_batch_size: int = Field(default=500, ge=1)
    inbox_retention_days: int = Field(
        default=30, ge=1, description="How long event ids are kept for duplicate detection."
    )

    def require_connections(self) -> tuple[str, str]:
        """Bootstrap servers and DSN, or a ConfigError saying which variable to set."""
        if self.kafka_bootstrap_servers and self.database_url:
            return self.kafka_bootstrap_servers, self.database_url
        missing = [
            name
            for name, value in (
                ("KAFKA_BOOTSTRAP_SERVERS", self.kafka_bootstrap_servers),
                ("DATABASE_URL", self.database_url),
            )
            if not value
        ]
        raise ConfigError(
            f"{' and '.join(missing)} not set: export it (see README, 'Configuration'), "
            "or start the whole local stack with `followup up`."
        )

    def policy_path(self) -> Path | None:
        if self.followup_policy_file is not None:
            if not self.followup_policy_file.is_file():
                raise ConfigError(
                    f"FOLLOWUP_POLICY_FILE={self.followup_policy_file}: no such file; "
                    "point it at a policy file or unset it to use the defaults."
                )
            return self.followup_policy_file
        return DEFAULT_POLICY_FILE if DEFAULT_POLICY_FILE.is_file() else None


class PolicySection(BaseModel):
    """Base of each service's section of the policy file: unknown keys are typos, so refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def load_settings(settings_class: type[BaseSettings]) -> Any:
    """Instantiate settings from the environment, turning validation errors into ConfigError."""
    try:
        return settings_class()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where="environment", upper=True)) from exc


def read_policy_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def load_policy(path: Path | None, section: str, model: type[P]) -> P:
    """Validate one ``[section]`` of the policy file; a missing section means all defaults."""
    data = read_policy_file(path).get(section, {})
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{section}] must be a table")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = f"{path or 'defaults'} [{section}]"
        raise ConfigError(_describe(exc, where=where, upper=False)) from exc


def _describe(exc: ValidationError, *, where: str, upper: bool) -> str:
    lines = [f"invalid configuration in {where}:"]
    for error in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in error["loc"]) or "(root)"
        name = loc.upper() if upper else loc
        shown = error.get("input")
        given = "" if upper or isinstance(shown, dict) else f" (given: {shown!r})"
        lines.append(f"  {name}: {error['msg']}{given}")
    return "\n".join(lines)

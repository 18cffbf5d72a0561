"""Logistics settings: connections from the environment, policy from ``[logistics]``."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from followup.settings import PolicySection, RuntimeSettings


class LogisticsSettings(RuntimeSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    http_port: int = Field(default=8002, ge=0, le=65535)


class LogisticsPolicy(PolicySection):
    """Detection thresholds; filled in by the logistics rules."""

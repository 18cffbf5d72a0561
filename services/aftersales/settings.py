"""After-sales settings: connections from the environment, policy from ``[aftersales]``."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from followup.settings import PolicySection, RuntimeSettings


class AftersalesSettings(RuntimeSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    http_port: int = Field(default=8003, ge=0, le=65535)


class AftersalesPolicy(PolicySection):
    """Promises and reminders; filled in by the after-sales rules."""

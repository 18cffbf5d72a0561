"""The CloudEvents 1.0 structured-mode JSON envelope every Kafka message value uses."""

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Contract(BaseModel):
    """Base of every contract model: immutable, and tolerant of fields a platform adds later."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class CloudEvent(Contract):
    """Envelope fields; each concrete event narrows ``type`` and adds a typed ``data``."""

    specversion: Literal["1.0"] = Field(description="CloudEvents specification version.")
    id: str = Field(
        min_length=1,
        description="Unique per event; a redelivered event keeps its id, which is how "
        "consumers recognise duplicates.",
        examples=["5f0c6c1e-3f1a-4c53-9b1e-4a8f8a0c2f11"],
    )
    source: str = Field(
        min_length=1, description="Producer of the event.", examples=["shop-platform/orders"]
    )
    type: str = Field(description="Event type; decides the shape of `data`.")
    time: AwareDatetime = Field(
        description="When it happened at the source (RFC 3339 with offset). Policies count "
        "from this time, not from when the message was consumed.",
        examples=["2026-11-22T10:00:00+08:00"],
    )
    datacontenttype: str = Field(
        default="application/json", description="Media type of `data`; always JSON here."
    )
    subject: str | None = Field(default=None, description="Optional CloudEvents subject.")

"""Kafka topics and which event types travel on each."""

from enum import StrEnum


class Topic(StrEnum):
    ORDERS = "shop.orders"
    PAYMENTS = "shop.payments"
    SHIPMENTS = "shop.shipments"
    AFTERSALES = "shop.aftersales"
    NOTIFICATIONS = "followup.notifications"
    NOTIFICATION_STATUS = "followup.notification-status"

    @property
    def dead_letters(self) -> str:
        """Where a consumer of this topic parks messages it cannot process."""
        return f"{self.value}.dlq"


CONSUMED_TOPICS = (
    Topic.ORDERS,
    Topic.PAYMENTS,
    Topic.SHIPMENTS,
    Topic.AFTERSALES,
    Topic.NOTIFICATIONS,
)
"""Topics some service of ours consumes, so each has a dead-letter topic."""


def all_topic_names() -> list[str]:
    """Every topic the stack needs, dead-letter topics included."""
    return [t.value for t in Topic] + [t.dead_letters for t in CONSUMED_TOPICS]

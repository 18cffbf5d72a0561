"""Delivery metrics by channel, kind and reason; never by customer."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from followup.metrics import LATENCY_BUCKETS


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "followup_notifications_total",
            "Messages by final outcome (sent, failed, suppressed) and reason.",
            ["kind", "channel", "outcome", "reason"],
            registry=registry,
        )
        self.accepted = Counter(
            "followup_notification_commands_total",
            "Commands consumed: accepted into the queue, or already known (duplicate).",
            ["kind", "result"],
            registry=registry,
        )
        self.retries = Counter(
            "followup_delivery_retries_total",
            "Attempts that will be tried again later.",
            ["channel"],
            registry=registry,
        )
        self.provider_latency = Histogram(
            "followup_provider_latency_seconds",
            "Duration of one provider call.",
            ["channel", "provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.event_to_send = Histogram(
            "followup_event_to_send_seconds",
            "From the shop event that caused a message to its delivery.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.command_to_send = Histogram(
            "followup_command_to_send_seconds",
            "From the command's creation to its delivery.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "followup_delivery_queue_depth",
            "Messages waiting to be sent (due or not yet due).",
            registry=registry,
        )

"""Delivery metrics by channel, kind and reason; never by customer, order or message."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from followup.metrics import LATENCY_BUCKETS


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "followup_notifications_total",
            "Messages by final outcome (sent, failed, suppressed) and reason category.",
            ["kind", "channel", "outcome", "reason"],
            registry=registry,
        )
        self.accepted = Counter(
            "followup_notification_commands_total",
            "Commands consumed: accepted into the queue, held for the recipient, or already "
            "known (duplicate).",
            ["kind", "result"],
            registry=registry,
        )
        self.decisions = Counter(
            "followup_notification_decisions_total",
            "Messages deferred (quiet hours, contact budget), merged, held or released.",
            ["kind", "decision", "reason"],
            registry=registry,
        )
        self.preferences = Counter(
            "followup_contact_preferences_total",
            "Opt-outs and opt-ins applied.",
            ["channel", "message_class", "change"],
            registry=registry,
        )
        self.retries = Counter(
            "followup_delivery_retries_total",
            "Attempts that will be tried again later.",
            ["kind", "channel"],
            registry=registry,
        )
        self.provider_calls = Counter(
            "followup_provider_calls_total",
            "Calls to each provider by result (delivered, retry, permanent).",
            ["channel", "provider", "result"],
            registry=registry,
        )
        self.provider_latency = Histogram(
            "followup_provider_latency_seconds",
            "Duration of one provider call.",
            ["channel", "provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.circuit_state = Gauge(
            "followup_provider_circuit_state",
            "Circuit breaker per provider: 0 closed, 1 half-open (one trial call), 2 open.",
            ["channel", "provider"],
            registry=registry,
        )
        self.event_to_send = Histogram(
            "followup_event_to_send_seconds",
            "From the shop event that caused a message (its CloudEvents time) to its delivery.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.command_to_send = Histogram(
            "followup_command_to_send_seconds",
            "From the command's creation (its CloudEvents time) to its delivery.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "followup_queue_wait_seconds",
            "From the command being consumed (or its not_before) to the first provider call.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "followup_delivery_queue_depth",
            "Messages waiting: pending (due or deferred), held (recipient not known yet), "
            "sending (claimed by a worker).",
            ["state"],
            registry=registry,
        )

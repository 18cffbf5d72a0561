"""Domain metrics of the after-sales service (no case, order or customer ids in labels)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Cases live for minutes to weeks: from one minute to a month.
CASE_BUCKETS = (
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    3 * 3600.0,
    6 * 3600.0,
    12 * 3600.0,
    24 * 3600.0,
    48 * 3600.0,
    72 * 3600.0,
    7 * 86400.0,
    14 * 86400.0,
    30 * 86400.0,
)


class AftersalesMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage_events = Counter(
            "followup_aftersales_stage_events_total",
            "After-sales steps by stage and outcome: advanced the case, late (a lower stage "
            "seen after a higher one) or duplicate.",
            ["stage", "outcome"],
            registry=registry,
        )
        self.messages = Counter(
            "followup_aftersales_messages_total",
            "Messages decided, by message (stage, still_on_it, return_reminder, "
            "return_final_reminder, escalation), decision (sent, skipped, cancelled) and reason.",
            ["message", "decision", "reason"],
            registry=registry,
        )
        self.open_cases = Gauge(
            "followup_aftersales_open_cases",
            "Cases waiting for someone (the shop, the customer or the carrier), by stage. Read "
            "from the database, so every replica reports the same figure: aggregate with max.",
            ["stage"],
            registry=registry,
        )
        self.overdue_cases = Gauge(
            "followup_aftersales_overdue_cases",
            "Cases past a promised deadline that is still not met, by promise (max over replicas).",
            ["promise"],
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "followup_aftersales_stage_seconds",
            "Time a case spent in a stage before moving on (event times), by stage and kind.",
            ["stage", "kind"],
            buckets=CASE_BUCKETS,
            registry=registry,
        )
        self.receipt_to_refund = Histogram(
            "followup_aftersales_receipt_to_refund_seconds",
            "Time from the warehouse receiving a returned item to the refund (event times).",
            buckets=CASE_BUCKETS,
            registry=registry,
        )
        self.promises = Counter(
            "followup_aftersales_promises_total",
            "The shop's promises by kind (first_answer, refund, replacement, progress) and "
            "outcome (kept, breached, void when the case ended another way).",
            ["promise", "outcome"],
            registry=registry,
        )
        self.escalations = Counter(
            "followup_aftersales_escalations_total",
            "Cases escalated to operations, by the promise that was broken.",
            ["promise"],
            registry=registry,
        )

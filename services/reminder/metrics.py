"""Domain metrics of the reminder service (no customer or order ids in labels)."""

from prometheus_client import CollectorRegistry, Counter


class ReminderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "followup_reminder_decisions_total",
            "Reminder decisions (scheduled, skipped, cancelled, sent) by reason and tier.",
            ["decision", "reason", "tier"],
            registry=registry,
        )

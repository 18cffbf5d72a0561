"""Metrics of the shared runtime; each service adds its domain metrics to the same registry.

Labels never carry customer, order or case ids: those would make a series per customer.
"""

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class RuntimeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "followup_events_total",
            "Consumed events by outcome (processed, duplicate, dead_lettered).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "followup_batch_seconds",
            "Time to store one consumed batch in its database transaction.",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.transient_errors = Counter(
            "followup_transient_errors_total",
            "Infrastructure failures that were retried (database or broker unreachable).",
            ["component"],
            registry=registry,
        )
        self.batches_waiting = Gauge(
            "followup_consumer_batches_waiting",
            "Fetched batches that cannot be stored yet (database away); timers wait for them.",
            ["topic"],
            registry=registry,
        )
        self.outbox_published = Counter(
            "followup_outbox_published_total",
            "Messages published from the outbox.",
            ["topic"],
            registry=registry,
        )
        self.outbox_lag = Histogram(
            "followup_outbox_lag_seconds",
            "Time from the outbox write (commit) to the broker's acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "followup_outbox_pending", "Messages waiting in the outbox.", registry=registry
        )
        self.timers_fired = Counter(
            "followup_timers_fired_total", "Timers that fired.", ["kind"], registry=registry
        )
        self.timer_lateness = Histogram(
            "followup_timer_lateness_seconds",
            "How long after its due time a timer fired.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.timers_pending = Gauge(
            "followup_timers_pending",
            "Timers waiting for their due time.",
            ["kind"],
            registry=registry,
        )
        self.timer_failures = Counter(
            "followup_timer_failures_total",
            "Timer handler failures; the timer is retried with backoff.",
            ["kind"],
            registry=registry,
        )
        self.timers_parked = Gauge(
            "followup_timers_parked",
            "Timers that failed too often and wait for a person (see the timers table).",
            ["kind"],
            registry=registry,
        )
        self.loop_restarts = Counter(
            "followup_background_loop_restarts_total",
            "Background loops restarted after an unexpected error.",
            ["loop"],
            registry=registry,
        )


# Families whose samples are levels, not running totals: the highest level of any process is
# what an operator needs (a circuit open anywhere, the deepest queue seen).
_LEVELS = frozenset({"gauge", "info", "stateset", "unknown"})


def totals(families: Iterable[Metric]) -> list[Metric]:
    """The running totals among ``families``: what a process that ended leaves behind (its
    levels ended with it)."""
    return [f for f in families if f.type not in _LEVELS]


def merge_families(groups: Iterable[Iterable[Metric]]) -> list[Metric]:
    """The metric families of several processes of one service, as one service's.

    Counters, histograms and summaries add up; a level (gauge) is the largest of the
    processes'; a ``_created`` timestamp is the earliest. Series keep their first-seen order,
    so a histogram's buckets stay together and in order."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in groups:
        for family in families:
            if family.name not in merged:
                merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                values[family.name] = {}
            series = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                if key not in series:
                    series[key] = sample.value
                elif sample.name.endswith("_created"):
                    series[key] = min(series[key], sample.value)
                elif family.type in _LEVELS:
                    series[key] = max(series[key], sample.value)
                else:
                    series[key] += sample.value
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())

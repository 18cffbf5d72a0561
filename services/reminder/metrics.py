"""Domain metrics of the reminder service (no customer or order ids in labels).

Counts are taken after the transaction that decided them committed (``Tally``), so a batch
retried after a database error is not counted twice.
"""

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

# From "paid a minute after the reminder" to "paid the next day".
_TIME_TO_PAYMENT_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800)


class ReminderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "followup_reminder_decisions_total",
            "Reminder decisions (scheduled, deferred, skipped, cancelled, merged, sent, "
            "recovered) by reason, tier and segment.",
            ["decision", "reason", "tier", "segment"],
            registry=registry,
        )
        self.orders = Counter(
            "followup_reminder_orders_total",
            "Unpaid orders planned, by segment and experiment group (variant; `holdout` gets "
            "no reminders, `none` when no experiment runs).",
            ["segment", "variant"],
            registry=registry,
        )
        self.paid = Counter(
            "followup_reminder_orders_paid_total",
            "Planned orders that were paid, by segment, experiment group and whether a "
            "reminder had gone out: conversion per group, holdout included.",
            ["segment", "variant", "reminded"],
            registry=registry,
        )
        self.recovered = Counter(
            "followup_reminder_recovered_orders_total",
            "Orders paid after at least one reminder, by the last tier sent before payment.",
            ["tier", "segment", "variant"],
            registry=registry,
        )
        self.recovered_revenue = Counter(
            "followup_reminder_recovered_revenue_total",
            "Amount paid for recovered orders, in the order's currency.",
            ["tier", "segment", "variant", "currency"],
            registry=registry,
        )
        self.time_to_payment = Histogram(
            "followup_reminder_time_to_payment_seconds",
            "Time from the last reminder to the payment of a recovered order.",
            ["tier", "segment"],
            buckets=_TIME_TO_PAYMENT_BUCKETS,
            registry=registry,
        )
        self.messages = Counter(
            "followup_reminder_messages_total",
            "Reminder messages sent to the notifier, by how many orders each lists.",
            ["orders"],
            registry=registry,
        )
        self.confirmations = Counter(
            "followup_reminder_confirmations_total",
            "Order confirmations: sent, or skipped with the reason.",
            ["outcome"],
            registry=registry,
        )


class Tally:
    """Counts collected inside a transaction, applied by ``commit`` once it committed.

    Summed per series first: a batch of a thousand orders touches a handful of series, and a
    label lookup costs more than the addition."""

    def __init__(self) -> None:
        self._counts: dict[tuple[Counter, tuple[str, ...]], float] = {}
        self._observations: list[tuple[Histogram, tuple[str, ...], float]] = []

    def inc(self, counter: Counter, labels: Sequence[str], amount: float = 1.0) -> None:
        key = (counter, tuple(labels))
        self._counts[key] = self._counts.get(key, 0.0) + amount

    def observe(self, histogram: Histogram, labels: Sequence[str], value: float) -> None:
        self._observations.append((histogram, tuple(labels), value))

    def commit(self) -> None:
        counts, self._counts = self._counts, {}
        observations, self._observations = self._observations, []
        for (counter, labels), amount in counts.items():
            counter.labels(*labels).inc(amount)
        for histogram, labels, value in observations:
            histogram.labels(*labels).observe(value)

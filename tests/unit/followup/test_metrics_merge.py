"""Metrics of several processes shown as one service's (``merge_families``)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

from followup.metrics import merge_families


def process_metrics(
    sent: dict[str, float], latencies: list[float], depth: float
) -> tuple[CollectorRegistry, list[Metric]]:
    registry = CollectorRegistry()
    counter = Counter("sent", "Messages sent.", ["channel"], registry=registry)
    histogram = Histogram("latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=registry)
    gauge = Gauge("queue_depth", "Queue depth.", registry=registry)
    for channel, n in sent.items():
        counter.labels(channel).inc(n)
    for latency in latencies:
        histogram.observe(latency)
    gauge.set(depth)
    return registry, list(registry.collect())


def series(families: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_totals_add_up_levels_take_the_highest_and_created_the_earliest() -> None:
    _, first = process_metrics({"webhook": 3}, [0.05, 0.5], depth=7)
    _, second = process_metrics({"webhook": 2, "sms": 1}, [2.0], depth=4)

    merged = series(merge_families([first, second]))

    assert merged[("sent_total", (("channel", "webhook"),))] == 5
    assert merged[("sent_total", (("channel", "sms"),))] == 1
    assert merged[("latency_seconds_bucket", (("le", "0.1"),))] == 1
    assert merged[("latency_seconds_bucket", (("le", "1.0"),))] == 2
    assert merged[("latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert merged[("latency_seconds_count", ())] == 3
    assert merged[("latency_seconds_sum", ())] == 2.55
    assert merged[("queue_depth", ())] == 7
    created = {key: value for key, value in series(first).items() if key[0].endswith("_created")}
    assert all(merged[key] == min(value, series(second)[key]) for key, value in created.items())


def test_the_merged_families_expose_like_one_registry() -> None:
    registry, only = process_metrics({"webhook": 1}, [0.5], depth=1)

    class Merged:
        def collect(self) -> list[Metric]:
            return merge_families([only, []])

    assert generate_latest(Merged()) == generate_latest(registry)


def test_series_of_one_label_set_stay_together_in_order() -> None:
    _, first = process_metrics({"webhook": 1}, [], depth=0)
    registry = CollectorRegistry()
    labelled = Histogram(
        "latency_seconds", "Latency.", ["provider"], buckets=(1.0,), registry=registry
    )
    labelled.labels("twilio").observe(0.5)

    merged = merge_families([first, list(registry.collect())])

    latency = next(f for f in merged if f.name == "latency_seconds")
    names = [(s.name, s.labels.get("provider")) for s in latency.samples]
    twilio = [name for name, provider in names if provider == "twilio"]
    assert twilio == [
        "latency_seconds_bucket",
        "latency_seconds_bucket",
        "latency_seconds_count",
        "latency_seconds_sum",
        "latency_seconds_created",
    ]
    first_twilio = next(i for i, (_, p) in enumerate(names) if p == "twilio")
    assert all(p == "twilio" for _, p in names[first_twilio:])

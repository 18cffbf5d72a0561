"""Domain metrics of the logistics service (no order, shipment or customer ids in labels)."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class LogisticsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.notices = Counter(
            "followup_logistics_notices_total",
            "Messages decided, by kind, rule, colour and stage (notice, update, followup, "
            "closing, pickup, progress).",
            ["kind", "rule", "severity", "stage"],
            registry=registry,
        )
        self.escalations = Counter(
            "followup_logistics_escalations_total",
            "Cases handed to operations: red problems, and episodes whose follow-ups ran out.",
            ["rule", "reason"],
            registry=registry,
        )
        self.episodes = Counter(
            "followup_logistics_episodes_total",
            "Problem episodes opened, closed and handed over, per subject (shipment, dispatch).",
            ["subject", "event"],
            registry=registry,
        )
        self.open_episodes = Gauge(
            "followup_logistics_open_episodes",
            "Problem episodes open now, per subject and colour.",
            ["subject", "severity"],
            registry=registry,
        )
        self.scans = Counter(
            "followup_logistics_scans_total",
            "Tracking scans by status and effect: latest, older (arrived late) or repeated.",
            ["status", "effect"],
            registry=registry,
        )
        self.holiday_data_until = Gauge(
            "followup_logistics_holiday_data_until_year",
            "Last year the holiday calendar covers; later working days count Monday to Friday.",
            registry=registry,
        )
        self.calendar_fallbacks = Counter(
            "followup_logistics_calendar_fallbacks_total",
            "Dispatch notices whose deadline was counted Monday to Friday for lack of holiday "
            "data.",
            registry=registry,
        )

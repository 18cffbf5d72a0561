"""Replays decisions on one case the way the service stores them, and fires its timers in
time order, so scenarios over days run as pure function calls."""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from contracts.shop import AftersaleKind
from services.aftersales.messages import OrderFacts, Outgoing, compose
from services.aftersales.policy import (
    Case,
    CaseDecision,
    Intent,
    MessageRecord,
    Promise,
    PromiseKind,
    Stage,
    StageFact,
    decide,
)
from services.aftersales.settings import AftersalesPolicy

T0 = datetime.fromisoformat("2026-11-22T10:00:00+08:00")


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def utc(moment: datetime) -> str:
    """How the service spells a time in a message: ISO 8601 in UTC."""
    return moment.astimezone(UTC).isoformat()


def fact(
    stage: Stage,
    at: datetime,
    *,
    case_id: str = "R-1",
    order_id: str = "O-1",
    kind: AftersaleKind | None = AftersaleKind.RETURN_REFUND,
    **details: Any,
) -> StageFact:
    if stage is Stage.REQUESTED:
        details = {"kind": kind, "amount": Decimal("599.00"), "currency": "CNY", **details}
    return StageFact(
        case_id, order_id, stage, at, f"evt-{case_id}-{stage.value}-{at:%H%M}", **details
    )


@dataclass
class CaseReplay:
    policy: AftersalesPolicy = field(default_factory=AftersalesPolicy)
    case: Case | None = None
    promises: dict[PromiseKind, Promise] = field(default_factory=dict)
    messages: dict[str, MessageRecord] = field(default_factory=dict)
    sent: list[tuple[datetime, Intent]] = field(default_factory=list)
    decisions: list[CaseDecision] = field(default_factory=list)
    moments: list[datetime] = field(default_factory=list)

    def at(self, now: datetime, *facts: StageFact) -> CaseDecision:
        decision = decide(
            self.case,
            facts,
            promises=self.promises,
            messages=self.messages,
            policy=self.policy,
            now=now,
        )
        for timer in decision.timers:
            assert timer.due_at > now, f"timer {timer} is due already at {now}: it would loop"
        self.case = decision.case
        self.promises |= {c.promise.kind: c.promise for c in decision.promises}
        self.messages |= {s.name: MessageRecord(s.name, sent=True) for s in decision.sends}
        self.messages |= {s.name: MessageRecord(s.name, sent=False) for s in decision.skips}
        for name in decision.cancels:
            self.messages[name] = replace(self.messages[name], cancelled=True)
        self.sent += [(now, s) for s in decision.sends]
        self.decisions.append(decision)
        self.moments.append(now)
        return decision

    def run_until(self, end: datetime) -> list[tuple[datetime, str]]:
        """Fire the case's timers in order up to ``end``; what was sent meanwhile."""
        start = len(self.sent)
        for _ in range(100):
            timers = self.decisions[-1].timers if self.decisions else []
            due = min((t.due_at for t in timers), default=None)
            if due is None or due > end:
                return [(when, intent.name) for when, intent in self.sent[start:]]
            self.at(due)
        raise AssertionError("more than 100 wake-ups: a timer keeps firing")

    def outgoing(self, order: OrderFacts | None) -> list[Outgoing]:
        """Every message decided so far, worded as the service words them."""
        return [
            compose(i, d.case, order=order, promises=self.promises, policy=self.policy, now=now)
            for now, d in zip(self.moments, self.decisions, strict=True)
            for i in d.sends
        ]

    @property
    def names(self) -> list[str]:
        return [intent.name for _, intent in self.sent]

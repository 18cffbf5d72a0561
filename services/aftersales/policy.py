"""Pure after-sales decisions: where a case stands, which of the shop's promises run, what the
customer and operations must hear, and when to look at the case again. No I/O: every function
takes the case as stored and ``now``.

One rule carries the rest: a case only moves forward. A step whose stage ranks at or below the
case's is remembered (its time feeds the metrics) but never shown to the customer, so a late
``return_received`` cannot follow ``refunded`` and no stage is announced twice.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from contracts.shop import AftersaleKind
from services.aftersales.settings import AftersalesPolicy


class Stage(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETURN_SHIPPED = "return_shipped"
    RETURN_RECEIVED = "return_received"
    REFUNDED = "refunded"
    CLOSED = "closed"

    @property
    def rank(self) -> int:
        return _RANK[self]


# Approved and rejected are the two answers to a request, so they share a rank.
_RANK = {
    Stage.REQUESTED: 1,
    Stage.APPROVED: 2,
    Stage.REJECTED: 2,
    Stage.RETURN_SHIPPED: 3,
    Stage.RETURN_RECEIVED: 4,
    Stage.REFUNDED: 5,
    Stage.CLOSED: 6,
}

RESOLVED_STAGES = frozenset({Stage.REJECTED, Stage.REFUNDED, Stage.CLOSED})
"""Nothing is left for the shop to do; promises end and no 'still on it' message is due."""

INTERIM_STAGES = frozenset(
    {Stage.REQUESTED, Stage.APPROVED, Stage.RETURN_SHIPPED, Stage.RETURN_RECEIVED}
)
"""Their message says what happens next; once the case has moved on it would mislead."""

RETURN_KINDS = frozenset({AftersaleKind.RETURN_REFUND, AftersaleKind.EXCHANGE})


class FactOutcome(StrEnum):
    ADVANCED = "advanced"
    LATE = "late"
    """A stage below the case's, seen for the first time: remembered, never announced."""
    DUPLICATE = "duplicate"
    """A stage the case has already seen (the same step published again)."""


class Party(StrEnum):
    """Who has the next step of a case."""

    SHOP = "shop"
    CUSTOMER = "customer"
    NOBODY = "nobody"


class PromiseKind(StrEnum):
    FIRST_ANSWER = "first_answer"
    REFUND = "refund"
    REPLACEMENT = "replacement"
    PROGRESS = "progress"


class PromiseOutcome(StrEnum):
    OPEN = "open"
    KEPT = "kept"
    BREACHED = "breached"
    VOID = "void"
    """The case ended another way (withdrawn, rejected) before the promise was due."""
    UNTRACKED = "untracked"
    """Started before ``stale_after`` when first seen (a replayed history): not held to it."""


class NextStep(StrEnum):
    ANSWER = "answer"
    SHIP_BACK = "ship_back"
    RECEIVE_RETURN = "receive_return"
    REFUND = "refund"
    REPLACEMENT = "replacement"


class Wakeup(StrEnum):
    """Timer kinds: each one only wakes the case up; the decision is taken from its state."""

    PROMISE = "aftersale_promise"
    PROGRESS = "aftersale_progress"
    RETURN_REMINDER = "aftersale_return_reminder"


class CaseConflict(ValueError):
    """An event that contradicts what is known about the case (another order's case id)."""


@dataclass(frozen=True)
class StageFact:
    """One after-sales event, as the decisions need it."""

    case_id: str
    order_id: str
    stage: Stage
    at: datetime
    event_id: str
    kind: AftersaleKind | None = None
    amount: Decimal | None = None
    currency: str | None = None
    reason: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class Case:
    case_id: str
    order_id: str
    stage: Stage
    stage_at: datetime
    kind: AftersaleKind | None = None
    times: Mapping[Stage, datetime] = field(default_factory=dict)
    """When each stage happened, as first reported; late stages too."""
    event_ids: Mapping[Stage, str] = field(default_factory=dict)
    amount: Decimal | None = None
    currency: str | None = None
    reason: str | None = None
    reject_reason: str | None = None
    return_carrier: str | None = None
    return_tracking: str | None = None
    refund_amount: Decimal | None = None
    refund_currency: str | None = None
    refund_method: str | None = None
    last_visible_at: datetime | None = None
    """When the customer last heard about the case from us (stage or 'still on it')."""
    updates_sent: int = 0
    """'Still on it' messages sent so far."""
    breached: bool = False
    """A promise was broken on this case: later messages apologise for the wait."""

    @property
    def is_open(self) -> bool:
        return self.stage not in RESOLVED_STAGES


@dataclass(frozen=True)
class Promise:
    kind: PromiseKind
    started_at: datetime
    due_at: datetime
    outcome: PromiseOutcome
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class PromiseChange:
    promise: Promise
    escalate: bool = False
    """Broken while the case is still waiting: operations must act now."""


@dataclass(frozen=True)
class MessageRecord:
    """A message decided earlier for the case (natural key ``name``)."""

    name: str
    sent: bool
    cancelled: bool = False


# --- what the decision asks to send -----------------------------------------------------------


@dataclass(frozen=True)
class StageNotice:
    stage: Stage
    fact: StageFact

    @property
    def name(self) -> str:
        return self.stage.value


@dataclass(frozen=True)
class StillOnIt:
    number: int
    silent_since: datetime

    @property
    def name(self) -> str:
        return f"still_on_it.{self.number}"


@dataclass(frozen=True)
class ReturnReminder:
    final: bool
    due_at: datetime

    @property
    def name(self) -> str:
        return "return_final_reminder" if self.final else "return_reminder"


@dataclass(frozen=True)
class Escalation:
    promise: PromiseKind
    due_at: datetime
    number: int = 1
    """For stalls, which one (a case can stall more than once)."""

    @property
    def name(self) -> str:
        if self.promise is PromiseKind.PROGRESS:
            return f"escalation.progress.{self.number}"
        return f"escalation.{self.promise.value}"


Intent = StageNotice | StillOnIt | ReturnReminder | Escalation


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass(frozen=True)
class Applied:
    fact: StageFact
    outcome: FactOutcome


@dataclass(frozen=True)
class TimerPlan:
    wakeup: Wakeup
    what: str
    due_at: datetime


@dataclass(frozen=True)
class StageDuration:
    stage: Stage
    kind: AftersaleKind | None
    seconds: float


@dataclass(frozen=True)
class CaseDecision:
    case: Case
    applied: list[Applied]
    promises: list[PromiseChange]
    sends: list[Intent]
    skips: list[Skipped]
    cancels: list[str]
    """Names of earlier messages that the case has overtaken (drop them if still queued)."""
    timers: list[TimerPlan]
    stage_durations: list[StageDuration]
    receipt_to_refund_s: float | None
    progress: list[PromiseOutcome]
    """Progress promise outcomes observed now: kept (a real step in time) or breached."""


# --- the case file ----------------------------------------------------------------------------


def apply_fact(case: Case | None, fact: StageFact) -> tuple[Case, FactOutcome]:
    """The case after one step, and whether the step moved it forward."""
    if case is None:
        return _with_details(Case(fact.case_id, fact.order_id, fact.stage, fact.at), fact), (
            FactOutcome.ADVANCED
        )
    if fact.order_id != case.order_id:
        raise CaseConflict(
            f"case {fact.case_id} belongs to order {case.order_id}, "
            f"but this event names order {fact.order_id}"
        )
    updated = _with_details(case, fact)
    moves_up = fact.stage.rank > case.stage.rank
    # A request answered twice (rejected, then approved on appeal): the later answer stands.
    answer_changed = (
        fact.stage.rank == case.stage.rank
        and fact.stage is not case.stage
        and fact.at > case.stage_at
    )
    if moves_up or answer_changed:
        return replace(updated, stage=fact.stage, stage_at=fact.at), FactOutcome.ADVANCED
    if fact.stage in case.times:
        return updated, FactOutcome.DUPLICATE
    return updated, FactOutcome.LATE


def _with_details(case: Case, fact: StageFact) -> Case:
    """Add what the step tells; the first report of each detail wins, so a republished step
    cannot change what earlier messages said."""
    changes: dict[str, object] = {
        "times": {fact.stage: fact.at, **case.times},
        "event_ids": {fact.stage: fact.event_id, **case.event_ids},
    }
    if fact.stage is Stage.REQUESTED:
        changes |= {
            "kind": case.kind or fact.kind,
            "amount": case.amount if case.amount is not None else fact.amount,
            "currency": case.currency or fact.currency,
            "reason": case.reason or fact.reason,
        }
    elif fact.stage is Stage.REJECTED:
        changes["reject_reason"] = case.reject_reason or fact.reason
    elif fact.stage is Stage.RETURN_SHIPPED:
        changes |= {
            "return_carrier": case.return_carrier or fact.carrier,
            "return_tracking": case.return_tracking or fact.tracking_number,
        }
    elif fact.stage is Stage.REFUNDED:
        changes |= {
            "refund_amount": case.refund_amount if case.refund_amount is not None else fact.amount,
            "refund_currency": case.refund_currency or fact.currency,
            "refund_method": case.refund_method or fact.method,
        }
    return replace(case, **changes)  # type: ignore[arg-type]


def awaiting(case: Case) -> Party:
    """Who has the next step; the progress promise runs only while it is the shop's (or the
    carrier bringing the return back), the customer-side reminders while it is the customer's."""
    if not case.is_open:
        return Party.NOBODY
    if case.stage is Stage.APPROVED:
        if case.kind is AftersaleKind.REFUND_ONLY:
            return Party.SHOP
        if case.kind in RETURN_KINDS:
            return Party.CUSTOMER
        # Approved, but the request (and so the kind) has not been seen: unknown who acts.
        return Party.NOBODY
    return Party.SHOP


# --- promises ---------------------------------------------------------------------------------


def promise_terms(
    case: Case, policy: AftersalesPolicy
) -> dict[PromiseKind, tuple[datetime, datetime]]:
    """The deadline promises that apply to the case: kind -> (started at, due at)."""
    terms: dict[PromiseKind, tuple[datetime, datetime]] = {}
    if (requested := case.times.get(Stage.REQUESTED)) is not None:
        terms[PromiseKind.FIRST_ANSWER] = (requested, requested + policy.first_answer_within)
    received = case.times.get(Stage.RETURN_RECEIVED)
    if case.kind is AftersaleKind.EXCHANGE:
        if received is not None:
            terms[PromiseKind.REPLACEMENT] = (received, received + policy.replacement_within)
        return terms
    refund_from = case.times.get(Stage.APPROVED) if case.kind is AftersaleKind.REFUND_ONLY else None
    refund_from = refund_from or received
    if refund_from is not None:
        terms[PromiseKind.REFUND] = (refund_from, refund_from + policy.refund_within)
    return terms


_ANSWERS = (
    Stage.APPROVED,
    Stage.REJECTED,
    Stage.RETURN_SHIPPED,
    Stage.RETURN_RECEIVED,
    Stage.REFUNDED,
)

# Promise -> (stages that fulfil it, stages that end the case another way). An exchange is
# fulfilled by the case closing after the replacement went out, or by a refund instead (no
# stock left): either way the customer was taken care of.
_SETTLING: dict[PromiseKind, tuple[tuple[Stage, ...], tuple[Stage, ...]]] = {
    PromiseKind.FIRST_ANSWER: (_ANSWERS, (Stage.CLOSED,)),
    PromiseKind.REFUND: ((Stage.REFUNDED,), (Stage.REJECTED, Stage.CLOSED)),
    PromiseKind.REPLACEMENT: ((Stage.CLOSED, Stage.REFUNDED), (Stage.REJECTED,)),
}


def _earliest(case: Case, stages: Sequence[Stage]) -> datetime | None:
    return min((case.times[s] for s in stages if s in case.times), default=None)


def promise_settled(case: Case, kind: PromiseKind) -> tuple[datetime, bool] | None:
    """When the promise stopped running and whether the shop did what it promised (True) or
    the case ended another way first (False); None while it runs."""
    if kind not in _SETTLING:
        return None
    fulfilling, ending = _SETTLING[kind]
    done, ended = _earliest(case, fulfilling), _earliest(case, ending)
    if done is not None and (ended is None or done <= ended):
        return done, True
    return (ended, False) if ended is not None else None


def settle_promises(
    case: Case,
    promises: Mapping[PromiseKind, Promise],
    policy: AftersalesPolicy,
    now: datetime,
) -> list[PromiseChange]:
    """Start the promises the case has reached, and settle the running ones at ``now``."""
    changes: list[PromiseChange] = []
    for kind, (started, due) in promise_terms(case, policy).items():
        current = promises.get(kind)
        if current is not None and current.outcome is not PromiseOutcome.OPEN:
            continue  # decided once, for good
        if current is None and now - started > policy.stale_after:
            changes.append(PromiseChange(Promise(kind, started, due, PromiseOutcome.UNTRACKED)))
            continue
        settled = promise_settled(case, kind)
        if settled is not None:
            at, done = settled
            outcome = (
                (PromiseOutcome.KEPT if at <= due else PromiseOutcome.BREACHED)
                if done
                else PromiseOutcome.VOID
            )
            # Broken but already resolved (the deadline passed while we were not looking):
            # counted and apologised for, but there is nothing left for operations to do.
            changes.append(PromiseChange(Promise(kind, started, due, outcome, at)))
        elif now >= due:
            breached = Promise(kind, started, due, PromiseOutcome.BREACHED, now)
            changes.append(PromiseChange(breached, escalate=True))
        elif current is None or (current.started_at, current.due_at) != (started, due):
            changes.append(PromiseChange(Promise(kind, started, due, PromiseOutcome.OPEN)))
    return changes


@dataclass(frozen=True)
class NextStepPlan:
    step: NextStep
    due_at: datetime | None
    """When it is promised, if it is; None when nothing was promised (a return in transit)."""

    def quoted(self, now: datetime) -> datetime | None:
        """The time to quote to the customer: never one already past."""
        return self.due_at if self.due_at is not None and self.due_at > now else None


def upcoming_step(case: Case) -> NextStep | None:
    """What has to happen next on an open case."""
    if not case.is_open:
        return None
    if case.stage is Stage.REQUESTED:
        return NextStep.ANSWER
    if case.stage is Stage.RETURN_SHIPPED:
        return NextStep.RECEIVE_RETURN
    if case.stage is Stage.APPROVED and case.kind is not AftersaleKind.REFUND_ONLY:
        return NextStep.SHIP_BACK if case.kind in RETURN_KINDS else None
    # Approved refund-only, or the returned item is back.
    return NextStep.REPLACEMENT if case.kind is AftersaleKind.EXCHANGE else NextStep.REFUND


_PROMISED_BY = {
    NextStep.ANSWER: PromiseKind.FIRST_ANSWER,
    NextStep.REFUND: PromiseKind.REFUND,
    NextStep.REPLACEMENT: PromiseKind.REPLACEMENT,
}


def next_step(case: Case, policy: AftersalesPolicy) -> NextStepPlan | None:
    """What happens next on the case and by when, as the customer should hear it."""
    step = upcoming_step(case)
    if step is None:
        return None
    if step is NextStep.SHIP_BACK:
        return NextStepPlan(step, return_window_end(case, policy))
    terms = promise_terms(case, policy)
    promise = _PROMISED_BY.get(step)
    return NextStepPlan(step, terms[promise][1] if promise in terms else None)


# --- customer side: the item has to come back -------------------------------------------------


def return_window_end(case: Case, policy: AftersalesPolicy) -> datetime | None:
    approved = case.times.get(Stage.APPROVED)
    return approved + policy.return_window if approved is not None else None


def return_reminders(case: Case, policy: AftersalesPolicy) -> list[ReturnReminder]:
    """The reminders of an approved return, in order; the first is dropped when it would not
    come before the final one."""
    window_end = return_window_end(case, policy)
    if window_end is None:
        return []
    final = ReturnReminder(final=True, due_at=window_end - policy.final_reminder_before)
    first_due = case.times[Stage.APPROVED] + policy.return_reminder_after
    return ([ReturnReminder(False, first_due)] if first_due < final.due_at else []) + [final]


# --- the decision -----------------------------------------------------------------------------


def decide(
    case: Case | None,
    facts: Sequence[StageFact],
    *,
    promises: Mapping[PromiseKind, Promise],
    messages: Mapping[str, MessageRecord],
    policy: AftersalesPolicy,
    now: datetime,
) -> CaseDecision:
    """Apply new steps (none when a timer woke the case up) and decide everything due now."""
    applied: list[Applied] = []
    durations: list[StageDuration] = []
    current = case
    for fact in sorted(facts, key=lambda f: (f.stage.rank, f.at)):
        before = current
        current, outcome = apply_fact(current, fact)
        applied.append(Applied(fact, outcome))
        if outcome is FactOutcome.ADVANCED and before is not None:
            seconds = (fact.at - before.stage_at).total_seconds()
            if seconds >= 0:
                durations.append(StageDuration(before.stage, current.kind, seconds))
    if current is None:
        raise ValueError("decide() needs a stored case or at least one step")

    changes = settle_promises(current, promises, policy, now)
    if any(c.promise.outcome is PromiseOutcome.BREACHED for c in changes):
        current = replace(current, breached=True)
    settled = {**promises, **{c.promise.kind: c.promise for c in changes}}

    sends: list[Intent] = []
    skips: list[Skipped] = []
    progress: list[PromiseOutcome] = []
    advanced = [a for a in applied if a.outcome is FactOutcome.ADVANCED]
    for index, step in enumerate(advanced):
        reason = _notice_blocker(step, advanced[index + 1 :], messages, policy, now)
        if reason is None:
            sends.append(StageNotice(step.fact.stage, step.fact))
        elif reason != "already_sent":
            skips.append(Skipped(step.fact.stage.value, reason))
    if any(isinstance(s, StageNotice) for s in sends):
        if case is not None and _progress_kept(case, advanced, policy):
            progress.append(PromiseOutcome.KEPT)
        current = replace(current, last_visible_at=now)

    escalations = [Escalation(c.promise.kind, c.promise.due_at) for c in changes if c.escalate]
    escalations = [e for e in escalations if e.name not in messages]
    current, stall = _stall(current, policy, now)
    if stall is not None:
        sends.append(stall)
        progress.append(PromiseOutcome.BREACHED)
        # A broken deadline noticed at the same moment already alerts operations: one alert.
        if policy.escalate_stalls and not escalations:
            due = stall.silent_since + policy.progress_every
            sends.append(Escalation(PromiseKind.PROGRESS, due, stall.number))
    sends += escalations

    reminders, reminder_skips = _due_reminders(current, messages, policy, now)
    sends += reminders
    skips += reminder_skips

    cancels = (
        [
            m.name
            for m in messages.values()
            if m.sent
            and not m.cancelled
            and m.name != current.stage.value
            and _overtaken_by_progress(m.name)
        ]
        if advanced
        else []
    )
    decided = {*messages, *(s.name for s in sends), *(s.name for s in skips)}
    return CaseDecision(
        case=current,
        applied=applied,
        promises=changes,
        sends=sends,
        skips=skips,
        cancels=cancels,
        timers=plan_timers(current, settled, decided, policy),
        stage_durations=durations,
        receipt_to_refund_s=_receipt_to_refund(case, current),
        progress=progress,
    )


def _notice_blocker(
    step: Applied,
    later: Sequence[Applied],
    messages: Mapping[str, MessageRecord],
    policy: AftersalesPolicy,
    now: datetime,
) -> str | None:
    """Why this step's message must not go out, or None when it should."""
    stage = step.fact.stage
    if stage.value in messages:
        # Only an answer that changed back and forth can reach a stage twice: say it once.
        return "already_sent"
    if later and (
        stage in INTERIM_STAGES
        or (stage is Stage.REJECTED and any(a.fact.stage is Stage.APPROVED for a in later))
    ):
        return "superseded"
    if now - step.fact.at > policy.stale_after:
        return "stale_event"
    return None


def _progress_kept(before: Case, advanced: Sequence[Applied], policy: AftersalesPolicy) -> bool:
    """A real step came while the shop had the next move, within the progress interval."""
    if awaiting(before) is not Party.SHOP or before.last_visible_at is None:
        return False
    first = min(a.fact.at for a in advanced)
    return first - before.last_visible_at <= policy.progress_every


def _stall(case: Case, policy: AftersalesPolicy, now: datetime) -> tuple[Case, StillOnIt | None]:
    """A 'still on it' message when the shop's side has been silent for the interval."""
    if awaiting(case) is not Party.SHOP or case.last_visible_at is None:
        return case, None
    if now < case.last_visible_at + policy.progress_every:
        return case, None
    number = case.updates_sent + 1
    stall = StillOnIt(number, silent_since=case.last_visible_at)
    return replace(case, last_visible_at=now, updates_sent=number, breached=True), stall


def _due_reminders(
    case: Case, messages: Mapping[str, MessageRecord], policy: AftersalesPolicy, now: datetime
) -> tuple[list[Intent], list[Skipped]]:
    if awaiting(case) is not Party.CUSTOMER:
        return [], []
    window_end = return_window_end(case, policy)
    planned = return_reminders(case, policy)
    final_due = planned[-1].due_at
    sends: list[Intent] = []
    skips: list[Skipped] = []
    for reminder in planned:
        if reminder.name in messages or now < reminder.due_at:
            continue
        if window_end is not None and now >= window_end:
            skips.append(Skipped(reminder.name, "return_window_over"))
        elif not reminder.final and now >= final_due:
            skips.append(Skipped(reminder.name, "final_reminder_due"))
        else:
            sends.append(reminder)
    return sends, skips


def _overtaken_by_progress(name: str) -> bool:
    """Messages about a step that is behind the case now: announcements of interim stages,
    'still on it' updates and reminders to send the item back."""
    return (
        name in {s.value for s in INTERIM_STAGES}
        or name.startswith("still_on_it.")
        or name in {"return_reminder", "return_final_reminder"}
    )


def plan_timers(
    case: Case,
    promises: Mapping[PromiseKind, Promise],
    decided: Collection[str],
    policy: AftersalesPolicy,
) -> list[TimerPlan]:
    """When the case must be looked at again. Everything due by now has been decided above,
    so every planned time lies in the future (a timer due now would fire in a loop)."""
    plans = [
        TimerPlan(Wakeup.PROMISE, p.kind.value, p.due_at)
        for p in promises.values()
        if p.outcome is PromiseOutcome.OPEN
    ]
    party = awaiting(case)
    if party is Party.SHOP and case.last_visible_at is not None:
        plans.append(
            TimerPlan(Wakeup.PROGRESS, "progress", case.last_visible_at + policy.progress_every)
        )
    if party is Party.CUSTOMER:
        plans += [
            TimerPlan(Wakeup.RETURN_REMINDER, r.name, r.due_at)
            for r in return_reminders(case, policy)
            if r.name not in decided
        ]
    return plans


def _receipt_to_refund(before: Case | None, after: Case) -> float | None:
    """Seconds from the warehouse receiving the return to the refund, observed once: when the
    second of the two times becomes known (they may arrive in either order)."""
    received = after.times.get(Stage.RETURN_RECEIVED)
    refunded = after.times.get(Stage.REFUNDED)
    if received is None or refunded is None or refunded < received:
        return None
    if before is not None and {Stage.RETURN_RECEIVED, Stage.REFUNDED} <= before.times.keys():
        return None
    return (refunded - received).total_seconds()

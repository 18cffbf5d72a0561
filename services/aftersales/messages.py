"""What each after-sales message carries: the template, machine values for it (ISO times with
offset and decimal strings: the notifier renders them in the customer's language and
timezone), the evidence staff see (meta), priority and expiry. Pure: no I/O.

Every customer message gets the same set of variables, most of them null when they do not
apply, so a shop's own template for any stage can use any of them.
"""

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import JsonValue

from contracts.notifications import NotificationKind, Priority
from services.aftersales.policy import (
    Case,
    Escalation,
    Intent,
    Promise,
    PromiseKind,
    ReturnReminder,
    Stage,
    StageNotice,
    StillOnIt,
    next_step,
    promise_terms,
    return_window_end,
)
from services.aftersales.settings import AftersalesPolicy

_MAX_KEY_CHARS = 200  # SendNotification.idempotency_key


@dataclass(frozen=True)
class OrderFacts:
    """What the shop's order and payment events told about the order of a case."""

    order_id: str
    customer_name: str | None = None
    item_titles: tuple[str, ...] = ()
    currency: str | None = None
    paid_method: str | None = None


@dataclass(frozen=True)
class Outgoing:
    name: str
    """Natural key of the message within its case, e.g. ``refunded`` or ``still_on_it.2``."""
    kind: NotificationKind
    idempotency_key: str
    template: str
    variables: dict[str, JsonValue]
    meta: dict[str, JsonValue]
    priority: Priority
    expires_at: datetime | None
    source_event_id: str | None
    source_event_time: datetime | None


def message_key(kind: NotificationKind, case_id: str, name: str) -> str:
    """Permanent identity of one message of one case: the notifier never delivers it twice.
    A case id too long for the key is replaced by its digest (still unique and stable)."""
    scope = f"{kind.value}:aftersales" if kind is NotificationKind.OPS_ESCALATION else kind.value
    key = f"{scope}:{case_id}:{name}"
    if len(key) <= _MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(case_id.encode()).hexdigest()
    return f"{scope}:sha256-{digest}:{name}"


def refund_method(case: Case, order: OrderFacts | None) -> str | None:
    """Where the money goes back to; 'original' (or nothing said) is the order's payment."""
    if case.refund_method not in (None, "original"):
        return case.refund_method
    return order.paid_method if order is not None else None


def compose(
    intent: Intent,
    case: Case,
    *,
    order: OrderFacts | None,
    promises: Mapping[PromiseKind, Promise],
    policy: AftersalesPolicy,
    now: datetime,
) -> Outgoing:
    if isinstance(intent, Escalation):
        return _escalation(intent, case, promises, policy, now)
    source_event_id = case.event_ids.get(case.stage)
    source_event_time: datetime | None = case.stage_at
    expires_at = None
    if isinstance(intent, StageNotice):
        view = case if intent.stage is case.stage else replace(case, stage=intent.stage)
        template = f"aftersale_progress.{intent.stage.value}"
        if case.kind is not None:
            template += f".{case.kind.value}"
        variables = _variables(view, order, policy, now)
        meta = _meta(view, promises, "stage_notice")
        source_event_id, source_event_time = intent.fact.event_id, intent.fact.at
    elif isinstance(intent, StillOnIt):
        template = "aftersale_progress.still_on_it"
        variables = _variables(case, order, policy, now)
        meta = _meta(
            case,
            promises,
            "progress_every",
            silent_since=_iso(intent.silent_since),
            update_number=intent.number,
            next_step=variables["next_step"],
            next_step_by=variables["next_step_by"],
        )
        # The next one replaces it; an update still undelivered by then says nothing new.
        expires_at = now + policy.progress_every
    else:
        template = "aftersale_progress.return_reminder" + (".final" if intent.final else "")
        variables = {**_variables(case, order, policy, now), "final": intent.final}
        window_end = return_window_end(case, policy)
        meta = _meta(
            case,
            promises,
            intent.name,
            approved_at=_iso(case.times.get(Stage.APPROVED)),
            ship_back_by=_iso(window_end),
        )
        expires_at = window_end
    return Outgoing(
        name=intent.name,
        kind=NotificationKind.AFTERSALE_PROGRESS,
        idempotency_key=message_key(NotificationKind.AFTERSALE_PROGRESS, case.case_id, intent.name),
        template=template,
        variables=variables,
        meta=meta,
        priority=Priority.NORMAL if isinstance(intent, ReturnReminder) else Priority.HIGH,
        expires_at=expires_at,
        source_event_id=source_event_id,
        source_event_time=source_event_time,
    )


def _variables(
    case: Case, order: OrderFacts | None, policy: AftersalesPolicy, now: datetime
) -> dict[str, JsonValue]:
    step = next_step(case, policy)
    terms = promise_terms(case, policy)
    method = refund_method(case, order)
    arrival = policy.refund_arrival_for(method)
    refunded_at = case.times.get(Stage.REFUNDED)
    closed_at = case.times.get(Stage.CLOSED)
    amount, currency = _amount(case, order)

    def quoted(kind: PromiseKind) -> str | None:
        """A promised time, unless it has passed: never quote the customer a time gone by."""
        due = terms[kind][1] if kind in terms else None
        return _iso(due) if due is not None and due > now else None

    window_end = return_window_end(case, policy)
    next_update = now + policy.progress_every
    quoted_step = step.quoted(now) if step is not None else None
    return {
        "case_id": case.case_id,
        "order_id": case.order_id,
        "kind": case.kind.value if case.kind is not None else None,
        "stage": case.stage.value,
        "customer_name": order.customer_name if order is not None else None,
        "item_title": order.item_titles[0] if order is not None and order.item_titles else None,
        "item_count": len(order.item_titles) if order is not None else 0,
        "amount": amount,
        "currency": currency,
        "reason": case.reason,
        "apologise": case.breached,
        "next_step": step.step.value if step is not None else None,
        "next_step_by": _iso(quoted_step),
        "overdue": step is not None and step.due_at is not None and step.due_at <= now,
        "next_update_by": _iso(next_update),
        # The promised step itself comes before the next update: that is the news to wait for.
        "next_step_first": quoted_step is not None and quoted_step <= next_update,
        "answer_by": quoted(PromiseKind.FIRST_ANSWER),
        "ship_back_by": _iso(window_end) if window_end is not None and window_end > now else None,
        "refund_by": quoted(PromiseKind.REFUND),
        "replacement_by": quoted(PromiseKind.REPLACEMENT),
        "refund_within_hours": _hours(policy.refund_within),
        "replacement_within_hours": _hours(policy.replacement_within),
        "refund_method": method,
        "reject_reason": case.reject_reason,
        "carrier": case.return_carrier,
        "tracking_number": case.return_tracking,
        "money_expected_by": _iso(refunded_at + arrival) if refunded_at is not None else None,
        "money_expected_within_hours": _hours(arrival),
        "reopen_by": _iso(closed_at + policy.reopen_window) if closed_at is not None else None,
        "update_number": case.updates_sent,
        "final": False,
    }


def _amount(case: Case, order: OrderFacts | None) -> tuple[str | None, str | None]:
    """The refunded amount once known, else the amount asked for; shown only with a currency."""
    order_currency = order.currency if order is not None else None
    amount: Decimal | None
    if case.refund_amount is not None:
        amount = case.refund_amount
        currency = case.refund_currency or case.currency or order_currency
    else:
        amount, currency = case.amount, case.currency or order_currency
    if amount is None or currency is None:
        return None, None
    return str(amount), currency


def _meta(
    case: Case, promises: Mapping[PromiseKind, Promise], rule: str, **evidence: JsonValue
) -> dict[str, JsonValue]:
    return {
        "rule": rule,
        "stage": case.stage.value,
        "case_kind": case.kind.value if case.kind is not None else None,
        "stage_at": _iso(case.stage_at),
        "apologised": case.breached,
        "promises": {
            kind.value: {"due_at": _iso(p.due_at), "outcome": p.outcome.value}
            for kind, p in sorted(promises.items())
        },
        **evidence,
    }


def _escalation(
    intent: Escalation,
    case: Case,
    promises: Mapping[PromiseKind, Promise],
    policy: AftersalesPolicy,
    now: datetime,
) -> Outgoing:
    step = next_step(case, policy)
    amount, currency = _amount(case, None)
    silent_since = (
        intent.due_at - policy.progress_every if intent.promise is PromiseKind.PROGRESS else None
    )
    variables: dict[str, JsonValue] = {
        "case_id": case.case_id,
        "order_id": case.order_id,
        "kind": case.kind.value if case.kind is not None else None,
        "stage": case.stage.value,
        "stage_at": _iso(case.stage_at),
        "promise": intent.promise.value,
        "due_at": _iso(intent.due_at),
        "noticed_at": _iso(now),
        "overdue_minutes": max(0, math.floor((now - intent.due_at).total_seconds() / 60)),
        "stall_number": intent.number if intent.promise is PromiseKind.PROGRESS else None,
        "silent_since": _iso(silent_since),
        "next_step": step.step.value if step is not None else None,
        "amount": amount,
        "currency": currency,
    }
    meta = _meta(
        case,
        promises,
        f"{intent.promise.value}_breached",
        promise=intent.promise.value,
        due_at=_iso(intent.due_at),
        overdue_minutes=variables["overdue_minutes"],
    )
    return Outgoing(
        name=intent.name,
        kind=NotificationKind.OPS_ESCALATION,
        idempotency_key=message_key(NotificationKind.OPS_ESCALATION, case.case_id, intent.name),
        template=f"ops_escalation.aftersales.{intent.promise.value}",
        variables=variables,
        meta=meta,
        # Money owed to a customer past its promised time comes first.
        priority=Priority.CRITICAL if intent.promise is PromiseKind.REFUND else Priority.HIGH,
        expires_at=None,
        source_event_id=case.event_ids.get(case.stage),
        source_event_time=case.stage_at,
    )


def _iso(moment: datetime | None) -> str | None:
    """UTC, whatever offset the event or the database gave: one spelling per instant."""
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _hours(duration: timedelta) -> int:
    return max(1, math.ceil(duration.total_seconds() / 3600))

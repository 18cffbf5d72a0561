"""What to do with a due message, decided without I/O from what the store read and ``now``.

The order of the checks is the product's promise to customers: an expired or cancelled message
never goes out; an opted-out channel or class is never used; marketing-class messages wait
out the customer's night; one contact budget per customer across every service, where
service notices win over recovery reminders and nothing over budget is dropped silently.
"""

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from contracts.notifications import MessageClass, NotificationKind, Priority
from followup.values import value
from services.notifier.settings import NotifierPolicy, QuietHours

ANY = "*"
"""In an opt-out: every channel, or every class."""

ADDRESS_NEEDED = {"sms": "phone", "email": "email"}

HELD_RECHECK = timedelta(minutes=1)
"""How often a held message looks again for its order: an order.created that commits while
the command's own batch does is seen by neither transaction."""

_PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


@value
class Recipient:
    customer_id: str
    name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    phone: str | None = None
    email: str | None = None


@value
class DueMessage:
    """The facts of a claimed message that the decision needs."""

    message_id: str
    kind: str
    message_class: str
    priority: str
    customer_id: str | None
    order_id: str | None
    held: bool
    """Still waiting for its order to be known."""
    locale: str | None
    timezone: str | None
    expires_at: datetime | None
    accepted_at: datetime
    dead_channels: frozenset[str] = frozenset()
    hold_ends_at: datetime | None = None
    """For a held message: when it stops waiting for its order."""


@value
class Send:
    channels: tuple[str, ...]
    locale: str
    timezone: str
    skipped: tuple[str, ...] = ()
    """Channels left out and why, for the delivery log (``sms: opted_out``)."""


@value
class Defer:
    until: datetime
    reason: str


@value
class Suppress:
    reason: str


@value
class Fail:
    reason: str


Plan = Send | Defer | Suppress | Fail


@dataclass
class CustomerState:
    """What the store knows of one customer when a batch of their messages is planned."""

    recipient: Recipient | None
    opt_outs: frozenset[tuple[str, str]] = frozenset()
    """(channel, class) pairs, either may be ``*``."""
    contacts: list[datetime] = field(default_factory=list)
    """When messages counted against the budget went out, within the window."""


def is_ops(kind: str) -> bool:
    return kind == NotificationKind.OPS_ESCALATION.value


def priority_rank(priority: str) -> int:
    return _PRIORITY_RANK.get(Priority(priority), 2)


def opted_out(opt_outs: frozenset[tuple[str, str]], channel: str, message_class: str) -> bool:
    return any((c, k) in opt_outs for c in (channel, ANY) for k in (message_class, ANY))


def quiet_hours_end(now: datetime, timezone: str, quiet: QuietHours) -> datetime | None:
    """When the quiet hours ``now`` falls in end, in the customer's timezone; None if awake."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    start, end = quiet.start, quiet.end
    if start == end:
        return None
    t = local.timetz().replace(tzinfo=None)
    overnight = end <= start
    inside = (t >= start or t < end) if overnight else (start <= t < end)
    if not inside:
        return None
    end_day = local.date()
    if overnight and t >= start:
        end_day += timedelta(days=1)
    # Built from the local wall clock, so a DST change in the night lands on the right hour.
    return datetime.combine(end_day, end, tzinfo=zone)


def budget_slot(
    contacts: Sequence[datetime], now: datetime, allowance: int, window: timedelta
) -> datetime | None:
    """None if a message may go now; else when enough earlier contacts leave the window."""
    recent = sorted(c for c in contacts if c > now - window)
    if len(recent) < allowance:
        return None
    # With `allowance` slots, the message fits once all but allowance-1 contacts have aged out.
    return recent[len(recent) - allowance] + window


def plan_message(  # noqa: PLR0911 - one return per rule, in the order they apply
    message: DueMessage,
    state: CustomerState | None,
    now: datetime,
    policy: NotifierPolicy,
    configured: frozenset[str],
) -> Plan:
    """The decision for one due message; ``configured`` names the channels that have a
    provider in this deployment."""
    if message.expires_at is not None and now >= message.expires_at:
        return Suppress("expired")
    if message.held:
        if message.hold_ends_at is not None and now < message.hold_ends_at:
            return Defer(min(now + HELD_RECHECK, message.hold_ends_at), "waiting_for_order")
        return Suppress(f"recipient_unknown: order {message.order_id} was not seen in time")
    wanted = policy.routes.channels_for(message.kind)
    route = [c for c in wanted if c in configured]
    if not route:
        return Fail(f"no_channel: none of {', '.join(wanted)} is configured")
    if is_ops(message.kind):
        return Send(tuple(route), policy.ops_locale, policy.default_timezone)
    if not message.customer_id:
        return Suppress("recipient_unknown: the command names no customer and no order")
    recipient = state.recipient if state else None
    opt_outs = state.opt_outs if state else frozenset()
    if opted_out(opt_outs, ANY, message.message_class):
        return Suppress(f"opted_out: {message.message_class} messages")
    usable, skipped = usable_channels(route, message, recipient, opt_outs)
    if not usable:
        if any(s.endswith("opted_out") for s in skipped):
            return Suppress(f"opted_out: every channel of this message ({'; '.join(skipped)})")
        return Fail(f"no_reachable_channel: {'; '.join(skipped)}")
    timezone = message.timezone or (recipient and recipient.timezone) or policy.default_timezone
    wait = quiet_hours_wait(message, now, timezone, policy) or budget_wait(
        message, state.contacts if state else [], now, policy
    )
    if wait is not None:
        return wait
    locale = message.locale or (recipient and recipient.locale) or policy.default_locale
    return Send(tuple(usable), locale, timezone, tuple(skipped))


def usable_channels(
    route: Sequence[str],
    message: DueMessage,
    recipient: Recipient | None,
    opt_outs: frozenset[tuple[str, str]],
) -> tuple[list[str], list[str]]:
    """The route's channels this message may use, and why the others are left out."""
    usable: list[str] = []
    skipped: list[str] = []
    for channel in route:
        address = ADDRESS_NEEDED.get(channel)
        if channel in message.dead_channels:
            skipped.append(f"{channel}: failed for good earlier")
        elif opted_out(opt_outs, channel, message.message_class):
            skipped.append(f"{channel}: opted_out")
        elif address and not (recipient and getattr(recipient, address)):
            skipped.append(f"{channel}: no {address} on record")
        else:
            usable.append(channel)
    return usable, skipped


def quiet_hours_wait(
    message: DueMessage, now: datetime, timezone: str, policy: NotifierPolicy
) -> Defer | Suppress | None:
    """Messages of a quiet class wait for the customer's morning; critical ones never do."""
    if (
        MessageClass(message.message_class) not in policy.quiet_hours.classes
        or message.priority == Priority.CRITICAL.value
    ):
        return None
    wake = quiet_hours_end(now, timezone, policy.quiet_hours)
    if wake is None:
        return None
    if message.expires_at is not None and wake >= message.expires_at:
        return Suppress("quiet_hours: it would expire before the customer's morning")
    return Defer(wake, "quiet_hours")


def budget_wait(
    message: DueMessage, contacts: Sequence[datetime], now: datetime, policy: NotifierPolicy
) -> Defer | Suppress | None:
    """Over the customer's contact budget a message waits for a free slot; low priority
    (recovery reminders) leaves the reserved slots to service notices."""
    budget = policy.contact_budget
    if Priority(message.priority) in budget.exempt:
        return None
    reserved = budget.reserved_for_service if message.priority == Priority.LOW.value else 0
    slot = budget_slot(contacts, now, budget.limit - reserved, budget.window)
    if slot is None:
        return None
    if message.expires_at is not None and slot >= message.expires_at:
        return Suppress(
            f"contact_budget: {budget.limit} messages in {_hours(budget.window)} reached "
            "and it would expire before a slot frees"
        )
    return Defer(slot, "contact_budget")


def plan_batch(
    messages: Sequence[DueMessage],
    customers: Mapping[str, CustomerState],
    now: datetime,
    policy: NotifierPolicy,
    configured: frozenset[str],
) -> list[tuple[DueMessage, Plan]]:
    """Plan a claimed batch: higher priority first, so when one customer's budget has room
    for only one message, the service notice takes it, not the reminder."""
    ordered = sorted(messages, key=lambda m: (priority_rank(m.priority), m.accepted_at))
    plans = []
    for message in ordered:
        state = customers.get(message.customer_id) if message.customer_id else None
        plan = plan_message(message, state, now, policy, configured)
        if isinstance(plan, Send) and state is not None and not is_ops(message.kind):
            state.contacts.append(now)
        plans.append((message, plan))
    return plans


def retry_delay(
    attempts: int, base: timedelta, ceiling: timedelta, rng: random.Random
) -> timedelta:
    """Exponential backoff with jitter (half to full of the step), so many messages failing
    together do not come back together."""
    step = min(ceiling.total_seconds(), base.total_seconds() * 2 ** max(0, attempts - 1))
    return timedelta(seconds=rng.uniform(step / 2, step))


def may_retry(attempts: int, accepted_at: datetime, now: datetime, policy: NotifierPolicy) -> bool:
    return attempts < policy.max_attempts and now - accepted_at < policy.max_age


def _hours(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g}h"


# --- SMS length -------------------------------------------------------------------------------

# GSM 03.38 basic character set, and the extension table whose characters take two septets.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsLength:
    encoding: str
    """``GSM-7`` or ``UCS-2``."""
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int


def sms_length(text: str) -> SmsLength:
    """How many SMS segments ``text`` takes: a single message holds 160 GSM-7 septets or 70
    UCS-2 units; a longer one is split with a 6-byte header per part, leaving 153 or 67."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else math.ceil(units / part)
    return SmsLength(encoding, units, segments)

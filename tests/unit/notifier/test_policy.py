"""The notifier's decisions: every rule, its order, and its edges, with an injected ``now``."""

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notifier.policy import (
    CustomerState,
    Defer,
    DueMessage,
    Fail,
    Recipient,
    Send,
    Suppress,
    budget_slot,
    may_retry,
    opted_out,
    plan_batch,
    plan_message,
    quiet_hours_end,
    retry_delay,
    sms_length,
)
from services.notifier.settings import NotifierPolicy, QuietHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
ALL = frozenset({"webhook", "sms", "email", "ops"})
POLICY = NotifierPolicy()
WANG = Recipient("C-1", "王女士", "zh-CN", "Asia/Shanghai", "+8613812345678", "w@example.com")


def message(**fields: object) -> DueMessage:
    values: dict[str, object] = {
        "message_id": "m-1",
        "kind": "shipment_update",
        "message_class": "transactional",
        "priority": "normal",
        "customer_id": "C-1",
        "order_id": "O-1",
        "held": False,
        "locale": None,
        "timezone": None,
        "expires_at": None,
        "accepted_at": NOW,
    }
    values.update(fields)
    return DueMessage(**values)  # type: ignore[arg-type]


def state(**fields: object) -> CustomerState:
    values: dict[str, object] = {"recipient": WANG}
    values.update(fields)
    return CustomerState(**values)  # type: ignore[arg-type]


def test_a_plain_message_goes_over_its_route_in_the_recipients_language() -> None:
    plan = plan_message(message(), state(), NOW, POLICY, ALL)
    assert plan == Send(("webhook", "sms", "email"), "zh-CN", "Asia/Shanghai")


def test_the_commands_locale_and_timezone_win_over_the_recipients() -> None:
    plan = plan_message(message(locale="en", timezone="Europe/London"), state(), NOW, POLICY, ALL)
    assert isinstance(plan, Send)
    assert (plan.locale, plan.timezone) == ("en", "Europe/London")


def test_unknown_recipient_falls_back_to_the_policy_defaults() -> None:
    plan = plan_message(message(), state(recipient=None), NOW, POLICY, frozenset({"webhook"}))
    assert plan == Send(("webhook",), "zh-CN", "Asia/Shanghai")


def test_expired_wins_over_everything() -> None:
    plan = plan_message(message(expires_at=NOW, held=True), state(), NOW, POLICY, ALL)
    assert plan == Suppress("expired")


def test_a_hold_that_ran_out_is_suppressed_with_the_order_named() -> None:
    plan = plan_message(message(held=True, customer_id=None), None, NOW, POLICY, ALL)
    assert plan == Suppress("recipient_unknown: order O-1 was not seen in time")


def test_a_held_message_looks_again_every_minute_until_its_hold_ends() -> None:
    held = message(held=True, customer_id=None, hold_ends_at=NOW + timedelta(hours=2))
    assert plan_message(held, None, NOW, POLICY, ALL) == Defer(
        NOW + timedelta(minutes=1), "waiting_for_order"
    )
    ending = message(held=True, customer_id=None, hold_ends_at=NOW + timedelta(seconds=20))
    assert plan_message(ending, None, NOW, POLICY, ALL) == Defer(
        NOW + timedelta(seconds=20), "waiting_for_order"
    )


def test_a_customer_message_without_customer_is_suppressed() -> None:
    plan = plan_message(message(customer_id=None, order_id=None), None, NOW, POLICY, ALL)
    assert plan == Suppress("recipient_unknown: the command names no customer and no order")


def test_only_configured_channels_are_used_and_none_is_a_failure() -> None:
    assert plan_message(message(), state(), NOW, POLICY, frozenset({"email"})) == Send(
        ("email",), "zh-CN", "Asia/Shanghai"
    )
    assert plan_message(message(), state(), NOW, POLICY, frozenset({"ops"})) == Fail(
        "no_channel: none of webhook, sms, email is configured"
    )


def test_ops_messages_skip_customer_rules_and_use_the_ops_route() -> None:
    ops = message(kind="ops_escalation", customer_id=None, message_class="marketing")
    night = NOW.replace(hour=23)
    assert plan_message(ops, None, night, POLICY, ALL) == Send(
        ("ops", "webhook"), "zh-CN", "Asia/Shanghai"
    )


def test_routes_per_kind_from_the_policy() -> None:
    policy = NotifierPolicy.model_validate({"routes": {"shipment_exception": ["sms", "webhook"]}})
    plan = plan_message(message(kind="shipment_exception"), state(), NOW, policy, ALL)
    assert isinstance(plan, Send)
    assert plan.channels == ("sms", "webhook")


def test_unknown_kinds_and_channels_in_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind 'shipment_exeption'"):
        NotifierPolicy.model_validate({"routes": {"shipment_exeption": ["sms"]}})
    with pytest.raises(ValueError, match="channels are webhook, sms, email, ops"):
        NotifierPolicy.model_validate({"routes": {"shipment_exception": ["fax"]}})


@pytest.mark.parametrize(
    ("opt_outs", "channel", "klass", "expected"),
    [
        ({("sms", "*")}, "sms", "marketing", True),
        ({("sms", "*")}, "email", "marketing", False),
        ({("*", "marketing")}, "email", "marketing", True),
        ({("*", "marketing")}, "email", "transactional", False),
        ({("sms", "marketing")}, "sms", "transactional", False),
        ({("*", "*")}, "webhook", "transactional", True),
        (set(), "sms", "marketing", False),
    ],
)
def test_opt_out_matching(
    opt_outs: set[tuple[str, str]], channel: str, klass: str, expected: bool
) -> None:
    assert opted_out(frozenset(opt_outs), channel, klass) is expected


def test_opted_out_of_the_class_is_suppressed() -> None:
    plan = plan_message(
        message(message_class="marketing"),
        state(opt_outs=frozenset({("*", "marketing")})),
        NOW,
        POLICY,
        ALL,
    )
    assert plan == Suppress("opted_out: marketing messages")


def test_opted_out_channels_and_missing_addresses_are_skipped_with_reasons() -> None:
    no_email = Recipient("C-1", phone="+8613812345678")
    plan = plan_message(
        message(dead_channels=frozenset({"webhook"})),
        state(recipient=no_email, opt_outs=frozenset({("sms", "*")})),
        NOW,
        POLICY,
        ALL,
    )
    assert plan == Suppress(
        "opted_out: every channel of this message (webhook: failed for good earlier; "
        "sms: opted_out; email: no email on record)"
    )
    plan = plan_message(
        message(), state(recipient=Recipient("C-1")), NOW, POLICY, frozenset({"sms", "email"})
    )
    assert plan == Fail("no_reachable_channel: sms: no phone on record; email: no email on record")


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (time(20, 59), None),
        (time(21, 0), datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI)),
        (time(23, 30), datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI)),
        (time(3, 0), datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)),
        (time(8, 59), datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)),
        (time(9, 0), None),
    ],
)
def test_quiet_hours_overnight(local: time, expected: datetime | None) -> None:
    now = datetime.combine(NOW.date(), local, tzinfo=SHANGHAI)
    end = quiet_hours_end(now, "Asia/Shanghai", QuietHours())
    assert end == expected


def test_quiet_hours_within_one_day_and_in_the_customers_timezone() -> None:
    lunch = QuietHours(start=time(12, 0), end=time(14, 0))
    assert quiet_hours_end(NOW.replace(hour=13), "Asia/Shanghai", lunch) == NOW.replace(hour=14)
    assert quiet_hours_end(NOW.replace(hour=15), "Asia/Shanghai", lunch) is None
    # 23:00 in Shanghai is 15:00 in London: awake there.
    assert quiet_hours_end(NOW.replace(hour=23), "Europe/London", QuietHours()) is None
    assert quiet_hours_end(NOW, "Asia/Shanghai", QuietHours(start=time(9), end=time(9))) is None


def test_quiet_hours_end_on_the_local_clock_across_a_dst_change() -> None:
    # Night of 28-29 March 2026 in London: clocks go from 01:00 to 02:00.
    night = datetime(2026, 3, 29, 0, 30, tzinfo=ZoneInfo("Europe/London"))
    end = quiet_hours_end(night, "Europe/London", QuietHours())
    assert end is not None
    assert (end.hour, end.utcoffset()) == (9, timedelta(hours=1))


def test_marketing_waits_for_morning_transactional_and_critical_do_not() -> None:
    night = NOW.replace(hour=23)
    morning = datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI)
    assert plan_message(message(message_class="marketing"), state(), night, POLICY, ALL) == Defer(
        morning, "quiet_hours"
    )
    assert isinstance(plan_message(message(), state(), night, POLICY, ALL), Send)
    critical = message(message_class="marketing", priority="critical")
    assert isinstance(plan_message(critical, state(), night, POLICY, ALL), Send)
    policy = NotifierPolicy.model_validate(
        {"quiet_hours": {"classes": ["marketing", "transactional"]}}
    )
    assert plan_message(message(), state(), night, policy, ALL) == Defer(morning, "quiet_hours")


def test_quiet_hours_past_expiry_suppress() -> None:
    night = NOW.replace(hour=23)
    late = message(message_class="marketing", expires_at=night + timedelta(hours=2))
    assert plan_message(late, state(), night, POLICY, ALL) == Suppress(
        "quiet_hours: it would expire before the customer's morning"
    )


def test_budget_slot_is_when_enough_contacts_age_out() -> None:
    window = timedelta(hours=24)
    contacts = [NOW - timedelta(hours=h) for h in (20, 10, 1)]
    assert budget_slot(contacts, NOW, 4, window) is None
    assert budget_slot(contacts, NOW, 3, window) == NOW + timedelta(hours=4)
    assert budget_slot(contacts, NOW, 2, window) == NOW + timedelta(hours=14)
    assert budget_slot([NOW - timedelta(hours=25)], NOW, 1, window) is None


def test_low_priority_leaves_the_reserved_slot_to_service_notices() -> None:
    used = state(contacts=[NOW - timedelta(hours=h) for h in (3, 2, 1)])  # 3 of 4
    low = message(priority="low", message_class="marketing")
    assert plan_message(low, used, NOW, POLICY, ALL) == Defer(
        NOW + timedelta(hours=21), "contact_budget"
    )
    assert isinstance(plan_message(message(priority="high"), used, NOW, POLICY, ALL), Send)


def test_over_budget_defers_critical_is_exempt_expiry_suppresses_with_reason() -> None:
    full = state(contacts=[NOW - timedelta(hours=h) for h in (4, 3, 2, 1)])
    assert plan_message(message(), full, NOW, POLICY, ALL) == Defer(
        NOW + timedelta(hours=20), "contact_budget"
    )
    assert isinstance(plan_message(message(priority="critical"), full, NOW, POLICY, ALL), Send)
    soon = message(expires_at=NOW + timedelta(hours=1))
    assert plan_message(soon, full, NOW, POLICY, ALL) == Suppress(
        "contact_budget: 4 messages in 24h reached and it would expire before a slot frees"
    )


def test_a_batch_spends_the_budget_on_the_higher_priority_first() -> None:
    customers = {"C-1": state(contacts=[NOW - timedelta(hours=1)] * 2)}
    policy = NotifierPolicy.model_validate({"contact_budget": {"limit": 3}})
    reminder = message(message_id="r", priority="low", accepted_at=NOW - timedelta(minutes=5))
    notice = message(message_id="n", priority="high")
    update = message(message_id="u", priority="normal")
    planned = plan_batch([reminder, update, notice], customers, NOW, policy, ALL)
    plans = {m.message_id: p for m, p in planned}
    assert isinstance(plans["n"], Send)
    assert isinstance(plans["u"], Defer)
    assert isinstance(plans["r"], Defer)
    assert customers["C-1"].contacts[-1] == NOW


def test_budget_policy_refuses_a_reserve_as_large_as_the_limit() -> None:
    with pytest.raises(ValueError, match="reserved_for_service must be smaller than limit"):
        NotifierPolicy.model_validate({"contact_budget": {"limit": 1, "reserved_for_service": 1}})


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 2),
        ("您" * 70, "UCS-2", 1),
        ("您" * 71, "UCS-2", 2),
        ("您" * 134, "UCS-2", 2),
        ("您" * 135, "UCS-2", 3),
        ("a" * 69 + "您", "UCS-2", 1),  # one Chinese character makes the whole text UCS-2
        ("😀" * 35, "UCS-2", 1),  # outside the BMP: two UTF-16 units each
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_sms_segments(text: str, encoding: str, segments: int) -> None:
    length = sms_length(text)
    assert (length.encoding, length.segments) == (encoding, segments)


def test_retry_delay_doubles_with_jitter_and_a_ceiling() -> None:
    rng = random.Random(7)  # noqa: S311 - jitter, not security
    base, ceiling = timedelta(seconds=2), timedelta(seconds=60)
    for attempts, step in ((1, 2), (2, 4), (3, 8), (6, 60), (20, 60)):
        delays = {retry_delay(attempts, base, ceiling, rng) for _ in range(50)}
        assert all(timedelta(seconds=step / 2) <= d <= timedelta(seconds=step) for d in delays)
        assert len(delays) > 1


def test_retries_are_bounded_by_attempts_and_age() -> None:
    policy = NotifierPolicy.model_validate({"max_attempts": 3, "max_age": "1h"})
    assert may_retry(2, NOW, NOW + timedelta(minutes=59), policy)
    assert not may_retry(3, NOW, NOW, policy)
    assert not may_retry(1, NOW, NOW + timedelta(hours=1), policy)

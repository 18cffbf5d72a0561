"""The reminder's templates: both languages, the seeds' rules, SMS budget, and that every one
renders the variables the service really sends (StrictUndefined would fail at send time)."""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from followup.clock import ManualClock
from services.notifier.templates import BUILTIN_TEMPLATES, TemplateCatalog
from services.reminder.metrics import ReminderMetrics
from services.reminder.policy import OrderStatus
from services.reminder.service import ReminderService
from services.reminder.settings import Coupon, ReminderPolicy, ReminderTier, Segment
from services.reminder.store import OrderRow

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
CATALOG = TemplateCatalog([BUILTIN_TEMPLATES], default_locale="zh-CN")
OURS = sorted(
    {t.name for t in CATALOG if t.name.startswith(("unpaid_reminder", "order_confirmation"))}
)
BANNED = (
    "我们规定",
    "不可能",
    "你自己没看清楚",
    "逾期",
    "后果",
    "最后警告",
    "you failed",
    "must pay",
)


def sms_segments(text: str) -> int:
    per_segment = 160 if all(ord(c) < 128 or c in "£¥€" for c in text) else 70
    return -(-len(text) // per_segment)


@pytest.mark.parametrize("name", OURS)
def test_every_template_exists_in_both_languages(name: str) -> None:
    assert {t.locale for t in CATALOG if t.name == name} == {"zh-CN", "en"}


@pytest.mark.parametrize(("name", "locale"), [(n, loc) for n in OURS for loc in ("zh-CN", "en")])
def test_samples_render_within_two_sms_with_a_next_step_and_no_banned_words(
    name: str, locale: str
) -> None:
    template = CATALOG.resolve(name, locale)
    assert template.name == name
    rendered = CATALOG.render(name, locale, "Asia/Shanghai", template.body.sample)
    assert sms_segments(rendered.sms) <= 2, rendered.sms
    for part in (rendered.subject, rendered.text, rendered.sms):
        assert not any(word in part.lower() for word in BANNED), part
    # A concrete next step: reply to the message (and a time where one applies).
    reply = "回复" if locale == "zh-CN" else "reply"
    assert reply in rendered.text.lower()
    assert reply in rendered.sms.lower()
    assert "O-1001" in rendered.text


def order(order_id: str, *, segment: str, member_level: str = "none", stock: int = 2) -> OrderRow:
    return OrderRow(
        order_id=order_id,
        status=OrderStatus.UNPAID,
        customer_id="C-1",
        locale="zh-CN",
        timezone="Asia/Shanghai",
        created_at=T0,
        pay_deadline=T0 + timedelta(hours=24),
        total=Decimal("599.00"),
        currency="CNY",
        details={
            "customer": {
                "id": "C-1",
                "name": "王女士",
                "member_level": member_level,
                "phone": "+8613812345678",
            },
            "items": [
                {
                    "sku": "COAT",
                    "title": "羊毛混纺大衣",
                    "quantity": 1,
                    "unit_price": "599.00",
                    "options": {"size": "M"},
                    "stock_left": stock,
                }
            ],
            "shipping_address": {
                "recipient": "王女士",
                "phone": "+8613812345678",
                "city": "上海市",
                "street": "世纪大道100号3栋1201室",
            },
        },
        created_event="evt-1",
        settled_at=T0 + timedelta(minutes=30),
        segment=segment,
        variant="none",
        paid_amount=Decimal("599.00"),
        reminded_tier=None,
        last_reminded_at=None,
        confirmed_at=None,
        plan=None,
    )


def service(policy: ReminderPolicy | None = None) -> ReminderService:
    return ReminderService(
        policy or ReminderPolicy(), ManualClock(T0), ReminderMetrics(CollectorRegistry())
    )


def render(command: Any, locale: str, *, resolves_to: str | None = None) -> str:
    assert command.template is not None
    rendered = CATALOG.render(command.template, locale, "Asia/Shanghai", command.variables)
    assert rendered.template == (resolves_to or command.template)
    return rendered.text


@pytest.mark.parametrize("segment", [s.value for s in Segment])
@pytest.mark.parametrize("tier", [1, 2, 3])
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_segment_and_tier_renders_what_the_service_sends(
    segment: str, tier: int, locale: str
) -> None:
    coupon = Coupon(code="SAVE20", amount=Decimal(20), min_spend=Decimal(199))
    tiers = [
        ReminderTier(after_created=timedelta(minutes=15)),
        ReminderTier(after_created=timedelta(hours=3), coupon=coupon),
        ReminderTier(before_deadline=timedelta(hours=2), coupon=coupon),
    ]
    the_order = order("O-1", segment=segment, member_level="gold")
    command = service()._reminder(
        the_order, [the_order], tier, tiers[tier - 1], last=tier == 3, key="k"
    )
    # Middle tiers share their segment's wording; the first and the last have their own.
    text = render(command, locale, resolves_to=f"unpaid_reminder.{segment}" if tier == 2 else None)
    assert "O-1" in text
    if tier > 1:
        assert "SAVE20" in text  # the tier's coupon is mentioned
    if tier == 3:
        assert "11月23日 10:00" in text or "23 Nov, 10:00" in text  # when the order closes


def test_scarcity_only_when_stock_is_low() -> None:
    tier = ReminderTier(after_created=timedelta(minutes=15))
    low = order("O-1", segment="new", stock=2)
    plenty = order("O-2", segment="new", stock=80)
    assert "只剩 2 件" in render(
        service()._reminder(low, [low], 1, tier, last=False, key="k"), "zh-CN"
    )
    assert "只剩" not in render(
        service()._reminder(plenty, [plenty], 1, tier, last=False, key="k"), "zh-CN"
    )


def test_members_are_told_the_points_paying_earns_them() -> None:
    tier = ReminderTier(after_created=timedelta(minutes=15))
    member = order("O-1", segment="member", member_level="gold")
    text = render(service()._reminder(member, [member], 1, tier, last=False, key="k"), "zh-CN")
    assert "金卡会员" in text
    assert "599 积分" in text


def test_several_orders_are_listed_in_one_message() -> None:
    tier = ReminderTier(after_created=timedelta(minutes=15))
    first, second = order("O-1", segment="new"), order("O-2", segment="new")
    command = service()._reminder(first, [first, second], 1, tier, last=False, key="k")
    assert command.template == "unpaid_reminder.several"
    assert command.meta["orders"] == 2
    text = render(command, "en")
    assert "O-1" in text
    assert "O-2" in text
    assert "2 unpaid orders" in text


def test_confirmation_masks_contact_and_address_and_gives_the_dispatch_window() -> None:
    paid = order("O-1", segment="new")
    assert paid.details is not None
    command = service()._confirmation(paid, paid.details)
    assert command.idempotency_key == "order_confirmation:O-1"
    assert command.message_class.value == "transactional"
    text = render(command, "zh-CN")
    assert "138****5678" in text
    assert "13812345678" not in text
    assert "世纪大道****" in text
    assert "100号" not in text
    assert "羊毛混纺大衣（M） × 1" in text
    assert "11月23日至11月25日" in text  # paid Sunday 10:30: Monday..Wednesday

"""The after-sales templates, rendered with the variables the service really produces, in
both languages: every message renders, reads as domain-notes §4 asks, and fits two SMS."""

import math
from datetime import timedelta

import pytest

from contracts.notifications import NotificationKind
from contracts.shop import AftersaleKind
from services.aftersales.messages import OrderFacts, Outgoing
from services.aftersales.policy import Stage
from services.aftersales.settings import AftersalesPolicy
from services.notifier.templates import BUILTIN_TEMPLATES, TemplateCatalog
from tests.unit.aftersales.case_replay import CaseReplay, fact, hours

CATALOG = TemplateCatalog([BUILTIN_TEMPLATES], default_locale="zh-CN")
TIMEZONES = {"zh-CN": "Asia/Shanghai", "en": "Europe/London"}
OURS = ("aftersale_progress", "ops_escalation.aftersales")
BANNED = (
    "我们规定",
    "不可能",
    "没看清楚",
    "您自己",
    "你自己",
    "our rules",
    "our policy",
    "impossible",
    "you didn't read",
    "your fault",
)
APOLOGIES = {"zh-CN": ("抱歉", "很抱歉"), "en": ("Sorry", "We're sorry")}

R, REFUND_ONLY, EXCHANGE = (
    AftersaleKind.RETURN_REFUND,
    AftersaleKind.REFUND_ONLY,
    AftersaleKind.EXCHANGE,
)
ORDER = OrderFacts("O-1", "王女士", ("羊毛混纺大衣", "羊绒围巾"), "CNY", "alipay")
ONE_ITEM = OrderFacts("O-1", None, ("短靴",), "CNY", "card")


def _path(kind: AftersaleKind | None, *, late_refund: bool, method: str | None) -> CaseReplay:
    """A whole case of this kind: every stage, with timers fired in between."""
    replay = CaseReplay()
    steps: list[tuple[float, Stage, dict[str, object]]] = [(0, Stage.REQUESTED, {})]
    if kind is REFUND_ONLY:
        steps += [(2, Stage.APPROVED, {})]
        steps += [(60 if late_refund else 10, Stage.REFUNDED, {"method": method})]
    else:
        # Late: the answer, the shipping and the refund all come after their promised times.
        steps += [(30 if late_refund else 3, Stage.APPROVED, {})]
        shipped = 24 * 7.4 if late_refund else 24 * 2
        steps += [
            (shipped, Stage.RETURN_SHIPPED, {"carrier": "中通快递", "tracking_number": "ZT1"})
        ]
        steps += [(shipped + 12, Stage.RETURN_RECEIVED, {})]
        if kind is not EXCHANGE:
            steps += [(shipped + (40 if late_refund else 20), Stage.REFUNDED, {"method": method})]
    steps += [(24 * 10.5, Stage.CLOSED, {})]
    for h, stage, extra in steps:
        replay.run_until(hours(h))
        replay.at(hours(h), fact(stage, hours(h), kind=kind, **extra))  # type: ignore[arg-type]
    return replay


def _scenarios() -> list[Outgoing]:
    messages: list[Outgoing] = []
    variants = [("original", ORDER), ("card", ONE_ITEM), (None, None)]
    for n, (kind, late) in enumerate(
        (k, late) for k in (R, REFUND_ONLY, EXCHANGE) for late in (False, True)
    ):
        method, order = variants[n % len(variants)]
        messages += _path(kind, late_refund=late, method=method).outgoing(order)
    rejected = CaseReplay()
    rejected.at(hours(13), fact(Stage.REQUESTED, hours(0)))
    rejected.at(hours(14), fact(Stage.REJECTED, hours(14), reason="吊牌已剪。"))
    messages += rejected.outgoing(ORDER)
    plain = CaseReplay()
    plain.at(hours(2), fact(Stage.REJECTED, hours(2)))
    plain.at(hours(3), fact(Stage.CLOSED, hours(3)))
    messages += plain.outgoing(None)
    unknown_kind = CaseReplay()
    unknown_kind.at(hours(1), fact(Stage.APPROVED, hours(1)))
    unknown_kind.at(hours(2), fact(Stage.RETURN_SHIPPED, hours(2)))
    unknown_kind.run_until(hours(30))
    messages += unknown_kind.outgoing(ORDER)
    # The request arrives after its deadline: the acknowledgement quotes no past time.
    overdue = CaseReplay(AftersalesPolicy(progress_every=timedelta(hours=6)))
    overdue.at(hours(13), fact(Stage.REQUESTED, hours(0), kind=EXCHANGE))
    overdue.run_until(hours(20))
    messages += overdue.outgoing(ORDER)
    return messages


SCENARIOS = _scenarios()


def _sms_segments(text: str) -> int:
    gsm7 = set(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    extension = set("^{}\\[~]|€")
    if all(c in gsm7 or c in extension for c in text):
        units = sum(2 if c in extension else 1 for c in text)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def test_the_scenarios_cover_every_message_the_service_sends() -> None:
    templates = {
        m.template.split(".")[1] if m.template.count(".") else m.template for m in SCENARIOS
    }
    assert templates >= {s.value for s in Stage} | {"still_on_it", "return_reminder", "aftersales"}
    names = {m.name.split(".")[0] for m in SCENARIOS}
    assert {"return_final_reminder", "escalation"} <= names
    assert any(m.variables["apologise"] for m in SCENARIOS if m.name == "refunded")


def test_every_template_exists_in_both_languages() -> None:
    by_locale = {
        locale: {t.name for t in CATALOG if t.locale == locale and t.name.startswith(OURS)}
        for locale in TIMEZONES
    }
    assert by_locale["zh-CN"] == by_locale["en"]
    assert len(by_locale["en"]) == 11


@pytest.mark.parametrize("locale", TIMEZONES)
def test_each_template_renders_its_own_sample(locale: str) -> None:
    for template in CATALOG:
        if template.locale == locale and template.name.startswith(OURS):
            rendered = CATALOG.render(
                template.name, locale, TIMEZONES[locale], template.body.sample
            )
            assert rendered.text
            assert rendered.subject
            assert rendered.sms


@pytest.mark.parametrize("locale", TIMEZONES)
def test_every_message_renders_politely_and_fits_two_sms(locale: str) -> None:
    for message in SCENARIOS:
        resolved = CATALOG.resolve(message.template, locale)
        assert resolved.locale == locale
        # Our own commands always find their stage's template, never the bare fallback.
        assert resolved.name != "aftersale_progress", message.template
        rendered = CATALOG.render(message.template, locale, TIMEZONES[locale], message.variables)
        where = f"{message.name} ({message.template}, {locale}): {rendered.text}"
        for part in (rendered.subject, rendered.text, rendered.sms):
            assert "None" not in part, where
            assert "null" not in part, where
            assert not any(phrase in part for phrase in BANNED), where
        assert "O-1" in rendered.text, where
        assert "O-1" in rendered.sms, where
        assert _sms_segments(rendered.sms) <= 2, f"{where}\nSMS: {rendered.sms}"
        # Reminders are about the customer's step: they never apologise for the shop's wait.
        reminder = message.name in ("return_reminder", "return_final_reminder")
        if message.kind is NotificationKind.AFTERSALE_PROGRESS and (
            (message.variables["apologise"] and not reminder)
            or message.name in ("rejected",)
            or message.name.startswith("still_on_it")
        ):
            assert rendered.text.startswith(APOLOGIES[locale]), where


@pytest.mark.parametrize("locale", TIMEZONES)
def test_the_generic_fallback_renders_any_customer_message(locale: str) -> None:
    for message in SCENARIOS:
        if message.kind is NotificationKind.AFTERSALE_PROGRESS:
            rendered = CATALOG.render(
                "aftersale_progress", locale, TIMEZONES[locale], message.variables
            )
            assert "O-1" in rendered.text
            assert _sms_segments(rendered.sms) <= 2


def test_the_next_step_and_its_time_are_in_the_text() -> None:
    approved = next(
        m for m in SCENARIOS if m.template == "aftersale_progress.approved.return_refund"
    )
    zh = CATALOG.render(approved.template, "zh-CN", "Asia/Shanghai", approved.variables)
    en = CATALOG.render(approved.template, "en", "Europe/London", approved.variables)
    assert "11月29日 13:00 前把商品寄回" in zh.text  # approved at 13:00 + 7 days
    assert "Please send the item back by 29 Nov, 05:00" in en.text
    refunded = next(
        m for m in SCENARIOS if m.name == "refunded" and m.variables["refund_method"] == "card"
    )
    zh = CATALOG.render(refunded.template, "zh-CN", "Asia/Shanghai", refunded.variables)
    assert "已经退回到银行卡" in zh.text
    assert "预计" in zh.text
    assert "以银行的处理时间为准" in zh.text


def test_the_escalation_tells_staff_what_is_overdue_since_when() -> None:
    refund = next(m for m in SCENARIOS if m.name == "escalation.refund")
    zh = CATALOG.render(refund.template, "zh-CN", "Asia/Shanghai", refund.variables)
    assert zh.subject.startswith("【售后超时】R-1")
    assert "前退款" in zh.text
    assert "仍未退款" in zh.text
    stall = next(m for m in SCENARIOS if m.name.startswith("escalation.progress"))
    en = CATALOG.render(stall.template, "en", "Asia/Shanghai", stall.variables)
    assert en.subject.startswith("[After-sales stalled] R-1")
    assert "no progress since" in en.text

"""Every logistics template renders in zh-CN and en with its sample, reads as domain-notes.md
§4 asks (apology first for problems, a next step, no banned phrases) and fits two SMS."""

from typing import Any

import pytest

from services.notifier.templates import BUILTIN_TEMPLATES, Template, TemplateCatalog

CATALOG = TemplateCatalog([BUILTIN_TEMPLATES], default_locale="zh-CN")
PREFIXES = (
    "dispatch_delay",
    "shipment_delay",
    "shipment_exception",
    "shipment_update",
    "ops_escalation.logistics",
)
OURS = [t for t in CATALOG if t.name.startswith(PREFIXES)]
PROBLEMS = ("dispatch_delay", "shipment_delay", "shipment_exception")
BANNED = ("我们规定", "不可能", "你自己没看清楚", "your fault", "impossible")


def render(template: Template, **changes: Any) -> Any:
    timezone = "Asia/Shanghai" if template.locale == "zh-CN" else "Europe/London"
    return CATALOG.render(
        template.name, template.locale, timezone, {**template.body.sample, **changes}
    )


def sms_limit(text: str) -> int:
    """Two segments: 70 characters each in UCS-2, 160 in GSM-7 (ASCII here)."""
    return 160 * 2 if text.isascii() else 70 * 2


def test_every_name_exists_in_both_languages() -> None:
    names = {(t.locale, t.name) for t in OURS}
    assert len(names) == 28
    assert {n for _, n in names if _ == "zh-CN"} == {n for _, n in names if _ == "en"}


@pytest.mark.parametrize("template", OURS, ids=lambda t: f"{t.locale}/{t.name}")
@pytest.mark.parametrize("followup", [0, 1])
def test_renders_with_its_sample_and_fits_two_sms(template: Template, followup: int) -> None:
    rendered = render(template, followup=followup)
    assert rendered.subject
    assert rendered.text
    assert len(rendered.sms) <= sms_limit(rendered.sms), rendered.sms
    for phrase in BANNED:
        assert phrase not in rendered.text + rendered.sms


@pytest.mark.parametrize(
    "template", [t for t in OURS if t.name.startswith(PROBLEMS)], ids=lambda t: t.path.name
)
@pytest.mark.parametrize("followup", [0, 1])
def test_problem_messages_start_with_an_apology_and_say_when_the_next_update_comes(
    template: Template, followup: int
) -> None:
    rendered = render(template, followup=followup)
    apology = ("抱歉", "非常抱歉") if template.locale == "zh-CN" else ("We're", "Sorry")
    assert rendered.text.startswith(apology), rendered.text
    assert rendered.sms.startswith(("抱歉", "非常抱歉", "Sorry", "We're")), rendered.sms
    assert ("前" in rendered.text) if template.locale == "zh-CN" else ("by" in rendered.text)


@pytest.mark.parametrize(
    "template", [t for t in OURS if t.name.startswith("shipment_")], ids=lambda t: t.path.name
)
def test_renders_when_carrier_item_and_dates_are_unknown(template: Template) -> None:
    unknown = dict.fromkeys(
        (
            "carrier",
            "tracking_number",
            "location",
            "last_scan_at",
            "expected_delivery",
            "promised_delivery",
            "next_update_at",
            "item_title",
        ),
        None,
    )
    rendered = render(template, **unknown)
    assert "None" not in rendered.text + rendered.sms


def test_the_pickup_notice_is_helpful_not_an_apology() -> None:
    for template in OURS:
        if template.name == "shipment_update.pickup":
            rendered = render(template, after_delay=False)
            assert "抱歉" not in rendered.text
            assert "sorry" not in rendered.text.lower()


def test_times_are_shown_in_the_customers_timezone() -> None:
    (en,) = [t for t in OURS if t.locale == "en" and t.name == "shipment_delay"]
    rendered = render(en, next_update_at="2026-11-25T02:40:00+08:00")
    assert "24 Nov, 18:40" in rendered.text  # 02:40 in Shanghai is 18:40 in London


@pytest.mark.parametrize(
    ("hours", "zh", "en"),
    [
        (72, "已经 3 天没有", "for 3 days"),
        (26, "已经 26 小时没有", "for 26 hours"),
        # A threshold under an hour (a demo's compressed clock) never reads "0 hours".
        (0, "已经有一段时间没有", "for a while"),
    ],
)
def test_the_stall_is_said_in_days_hours_or_without_a_number(hours: int, zh: str, en: str) -> None:
    for template in OURS:
        if template.name == "shipment_delay":
            text = render(template, followup=0, hours_without_scan=hours).text
            assert (zh if template.locale == "zh-CN" else en) in text

"""`followup templates check`: it passes on every shipped template (this is the CI gate) and
finds each kind of problem in templates written to fail."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from followup import cli
from services.notifier.settings import TemplateRules
from services.notifier.template_check import check_templates, opening
from services.notifier.templates import BUILTIN_TEMPLATES

RULES = TemplateRules()


def write(directory: Path, locale: str, name: str, text: str, sms: str = "", **sample: str) -> Path:
    (directory / locale).mkdir(parents=True, exist_ok=True)
    path = directory / locale / f"{name}.toml"
    lines = ['subject = "主题"', f'text = """{text}"""', f'sms = """{sms or text}"""', "[sample]"]
    lines += [f'{k} = "{v}"' for k, v in sample.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rules_found(directory: Path, rules: TemplateRules = RULES) -> list[tuple[str, str]]:
    return [(f.path.name, f.rule) for f in check_templates([directory], rules).findings]


def test_every_shipped_template_passes_the_check() -> None:
    result = CliRunner().invoke(cli.app, ["templates", "check", str(BUILTIN_TEMPLATES)])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


def test_the_command_fails_and_names_the_file_and_rule(tmp_path: Path) -> None:
    write(tmp_path, "zh-CN", "shipment_delay", "您的包裹延误了，我们规定不能改地址。")
    write(
        tmp_path, "en", "shipment_delay", "We're sorry your parcel is late; we'll update you today."
    )
    result = CliRunner().invoke(cli.app, ["templates", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert "zh-CN/shipment_delay.toml: banned_phrase: text contains '我们规定'" in result.output
    assert "zh-CN/shipment_delay.toml: apology_missing" in result.output
    assert "2 templates checked" in result.output


def test_banned_phrases_in_both_languages_and_from_the_policy(tmp_path: Path) -> None:
    write(tmp_path, "zh-CN", "aftersale_progress", "这不可能，请回复。")
    write(tmp_path, "en", "aftersale_progress", "That is IMPOSSIBLE, please reply.")
    write(tmp_path, "zh-CN", "order_confirmation", "亲，请回复确认。")
    write(tmp_path, "en", "order_confirmation", "Dear customer, please reply to confirm.")
    assert sorted(rules_found(tmp_path)) == [
        ("aftersale_progress.toml", "banned_phrase"),
        ("aftersale_progress.toml", "banned_phrase"),
        ("aftersale_progress.toml", "banned_phrase"),
        ("aftersale_progress.toml", "banned_phrase"),
    ]
    shop = TemplateRules(extra_banned_phrases=["亲，"])
    assert ("order_confirmation.toml", "banned_phrase") in rules_found(tmp_path, shop)


def test_delay_exception_and_stalled_messages_open_with_an_apology(tmp_path: Path) -> None:
    write(
        tmp_path,
        "zh-CN",
        "shipment_exception",
        "王女士，您好！非常抱歉，包裹出现异常，今天内回复您。",
    )
    write(
        tmp_path,
        "en",
        "shipment_exception",
        "Hi Emma, your parcel is stuck. Sorry! We'll update you today.",
    )
    write(tmp_path, "zh-CN", "aftersale_progress.stalled", "很抱歉让您久等，我们今天内处理。")
    write(
        tmp_path, "en", "aftersale_progress.stalled", "Your refund is delayed, we will reply today."
    )
    assert sorted(rules_found(tmp_path)) == [
        ("aftersale_progress.stalled.toml", "apology_missing"),
        ("aftersale_progress.stalled.toml", "apology_missing"),
        ("shipment_exception.toml", "apology_missing"),
        ("shipment_exception.toml", "apology_missing"),
    ]


def test_opening_skips_the_greeting() -> None:
    assert opening("王女士，您好！非常抱歉，包裹延误了。我们会跟进。") == "非常抱歉，包裹延误了。"
    assert opening("Hi Emma, we're sorry your parcel is late. We'll call.") == (
        "we're sorry your parcel is late. "
    )
    assert opening("亲，包裹延误了，抱歉。") == "包裹延误了，抱歉。"
    assert opening("包裹延误了。很抱歉。") == "包裹延误了。"


def test_a_concrete_next_step_or_time_is_required(tmp_path: Path) -> None:
    write(
        tmp_path,
        "zh-CN",
        "shipment_update",
        "您的包裹正在路上。",
        sms="包裹预计{{ eta }}送达。",
        eta="11月25日",
    )
    write(tmp_path, "en", "shipment_update", "Your parcel is on its way.")
    assert sorted(rules_found(tmp_path)) == [
        ("shipment_update.toml", "next_step_missing"),
        ("shipment_update.toml", "next_step_missing"),
        ("shipment_update.toml", "next_step_missing"),
    ]


def test_sms_budget_counts_segments_by_encoding(tmp_path: Path) -> None:
    long_zh = "您的订单已发货，" * 17 + "请回复。"  # 140 UCS-2 units: 3 segments
    write(tmp_path, "zh-CN", "shipment_update", "请回复。", sms=long_zh)
    write(tmp_path, "en", "shipment_update", "Please reply.", sms="Please reply. " * 21)  # 294
    findings = check_templates([tmp_path], RULES).findings
    assert [(f.path.parent.name, f.rule) for f in findings] == [("zh-CN", "sms_too_long")]
    assert "140 UCS-2 characters = 3 segments (budget 2" in findings[0].detail
    assert rules_found(tmp_path, TemplateRules(max_sms_segments=3)) == []


def test_missing_variables_and_locales_are_found(tmp_path: Path) -> None:
    write(tmp_path, "zh-CN", "order_confirmation", "订单 {{ order_id }} 请回复确认。")
    assert sorted(rules_found(tmp_path)) == [
        ("order_confirmation.toml", "missing_locale"),
        ("order_confirmation.toml", "render_failed"),
    ]
    finding = next(
        f for f in check_templates([tmp_path], RULES).findings if f.rule == "render_failed"
    )
    assert "'order_id' is undefined" in finding.detail


def test_a_shop_directory_is_checked_with_ours_behind_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        "zh-CN",
        "unpaid_reminder",
        "订单 {{ order_id }} 还没付款，不可能再等了，请回复。",
        order_id="O-1",
    )
    report = check_templates([tmp_path, BUILTIN_TEMPLATES], RULES)
    shop_file = tmp_path / "zh-CN" / "unpaid_reminder.toml"
    assert [(f.path, f.rule) for f in report.findings] == [
        (shop_file, "banned_phrase"),  # in the text
        (shop_file, "banned_phrase"),  # and in the SMS
    ]
    assert len(report.checked) >= 4


@pytest.mark.parametrize("phrase", ["我们规定", "你自己没看清楚", "those are our rules"])
def test_the_seed_list_holds_the_domain_notes_phrases(phrase: str) -> None:
    assert phrase in RULES.banned_phrases

from pathlib import Path

import pytest

from services.notifier.templates import BUILTIN_TEMPLATES, TemplateCatalog, TemplateProblem

SAMPLE = {
    "customer_name": "王女士",
    "order_id": "O-1001",
    "items": [{"title": "羊毛混纺大衣", "quantity": 1, "options": {}}],
    "total": "599.00",
    "currency": "CNY",
    "pay_deadline": "2026-11-23T10:00:00+08:00",
    "tier": 1,
    "last_tier": False,
}


def write(directory: Path, locale: str, name: str, text: str) -> None:
    (directory / locale).mkdir(parents=True, exist_ok=True)
    (directory / locale / f"{name}.toml").write_text(
        f'subject = "s-{locale}-{name}"\ntext = """{text}"""\nsms = "sms"\n', encoding="utf-8"
    )


@pytest.fixture
def catalog() -> TemplateCatalog:
    return TemplateCatalog([BUILTIN_TEMPLATES], default_locale="zh-CN")


def test_renders_in_the_customers_language_and_timezone(catalog: TemplateCatalog) -> None:
    zh = catalog.render("unpaid_reminder", "zh-CN", "Asia/Shanghai", SAMPLE)
    en = catalog.render(
        "unpaid_reminder", "en", "Europe/London", {**SAMPLE, "customer_name": "Emma"}
    )
    assert "11月23日 10:00" in zh.text
    assert "¥599.00" in zh.text
    assert "23 Nov, 02:00" in en.text  # 10:00 in Shanghai is 02:00 in London
    assert en.text.startswith("Hi Emma,")


def test_locale_falls_back_to_the_language_then_the_default(catalog: TemplateCatalog) -> None:
    assert catalog.resolve("unpaid_reminder", "en-GB").locale == "en"
    assert catalog.resolve("unpaid_reminder", "zh-TW").locale == "zh-CN"
    assert catalog.resolve("unpaid_reminder", "fr").locale == "zh-CN"


def test_name_falls_back_one_part_at_a_time(tmp_path: Path) -> None:
    write(tmp_path, "en", "unpaid_reminder", "generic")
    write(tmp_path, "en", "unpaid_reminder.vip", "vip")
    catalog = TemplateCatalog([tmp_path], default_locale="en")
    assert catalog.render("unpaid_reminder.vip.2", "en", "UTC", {}).text == "vip"
    assert catalog.render("unpaid_reminder.new.1", "en", "UTC", {}).text == "generic"
    with pytest.raises(TemplateProblem, match="no template 'order_confirmation'"):
        catalog.resolve("order_confirmation", "en")


def test_the_shops_own_directory_wins(tmp_path: Path) -> None:
    write(tmp_path, "zh-CN", "unpaid_reminder", "本店的话术 {{ order_id }}")
    catalog = TemplateCatalog([tmp_path, BUILTIN_TEMPLATES], default_locale="zh-CN")
    assert (
        catalog.render("unpaid_reminder", "zh-CN", "Asia/Shanghai", SAMPLE).text
        == "本店的话术 O-1001"
    )
    assert catalog.resolve("unpaid_reminder", "en").path.is_relative_to(BUILTIN_TEMPLATES)


def test_a_missing_variable_fails_loudly(catalog: TemplateCatalog) -> None:
    incomplete = {k: v for k, v in SAMPLE.items() if k != "pay_deadline"}
    with pytest.raises(TemplateProblem, match="'pay_deadline' is undefined"):
        catalog.render("unpaid_reminder", "zh-CN", "Asia/Shanghai", incomplete)


def test_templates_cannot_run_code(tmp_path: Path) -> None:
    write(tmp_path, "en", "evil", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    catalog = TemplateCatalog([tmp_path], default_locale="en")
    with pytest.raises(TemplateProblem, match=r"unsafe|access"):
        catalog.render("evil", "en", "UTC", {})


def test_a_malformed_template_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "broken.toml").write_text('subject = "x"\n')
    with pytest.raises(TemplateProblem, match=r"broken\.toml"):
        TemplateCatalog([tmp_path], default_locale="en")


def test_text_without_template_syntax_is_rendered_as_written(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "note.toml").write_text(
        'subject = "  Your order is kept for you  "\n'
        'text = """\nBraces { alone } and 50% off stay as they are.\n"""\n'
        'sms = "{# a comment is syntax #}Order {{ order_id }}"\n',
        encoding="utf-8",
    )
    catalog = TemplateCatalog([tmp_path], default_locale="en")

    rendered = catalog.render("note", "en", "UTC", {"order_id": "O-1"})

    assert rendered.subject == "Your order is kept for you"
    assert rendered.text == "Braces { alone } and 50% off stay as they are."
    assert rendered.sms == "Order O-1"

"""Message templates: one TOML file per name and locale, rendered in a Jinja sandbox.

A file ``<locale>/<name>.toml`` holds ``subject``, ``text`` (gateway, e-mail) and ``sms`` (short
form) plus a ``[sample]`` table of variables used by the template check. Rendering fails
loudly on a missing variable, and a template cannot run code (sandbox, no imports).
"""

import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateError, pass_context
from jinja2 import Template as JinjaTemplate
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from followup.values import value

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"

PARTS = ("subject", "text", "sms")
"""What a template file holds: ``subject`` and ``text`` for the gateway, e-mail and chat bots,
``sms`` for the short form."""

_CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}
_TEMPLATE_SYNTAX = ("{{", "{%", "{#")
_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class TemplateProblem(Exception):
    """A template cannot be loaded or rendered; the message names the file and the cause."""


class TemplateFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = Field(min_length=1)
    text: str = Field(min_length=1)
    sms: str = Field(min_length=1)
    sample: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Template:
    name: str
    locale: str
    path: Path
    body: TemplateFile


@value
class Rendered:
    template: str
    locale: str
    subject: str
    text: str
    sms: str
    variables: Mapping[str, Any] = field(default_factory=dict)


def _in_zone(context: Context, value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(ZoneInfo(context["_timezone"]))


def _is_chinese(context: Context) -> bool:
    return str(context["_locale"]).lower().startswith("zh")


@pass_context
def _datetime(context: Context, value: str | datetime) -> str:
    """``11月23日 10:00`` / ``23 Nov, 10:00``, in the customer's timezone."""
    moment = _in_zone(context, value)
    if _is_chinese(context):
        return f"{moment.month}月{moment.day}日 {moment:%H:%M}"
    return f"{moment.day} {_EN_MONTHS[moment.month - 1]}, {moment:%H:%M}"


@pass_context
def _date(context: Context, value: str | datetime | date) -> str:
    """``11月23日`` / ``23 Nov``; a date-only value (a promised delivery day) stays as it is."""
    if isinstance(value, str):
        value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    day = _in_zone(context, value).date() if isinstance(value, datetime) else value
    if _is_chinese(context):
        return f"{day.month}月{day.day}日"
    return f"{day.day} {_EN_MONTHS[day.month - 1]}"


@pass_context
def _time(context: Context, value: str | datetime) -> str:
    return f"{_in_zone(context, value):%H:%M}"


def _money(amount: str | Decimal | int, currency: str) -> str:
    value = Decimal(str(amount))
    symbol = _CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(datetime=_datetime, date=_date, time=_time, money=_money)
    return env


class TemplateCatalog:
    """All templates from the shop's directory (if any) and ours; the shop's win."""

    def __init__(self, directories: Sequence[Path], *, default_locale: str) -> None:
        self._env = _environment()
        self._default_locale = default_locale
        self._templates: dict[tuple[str, str], Template] = {}
        for directory in reversed(directories):  # later (higher priority) dirs overwrite
            for template in load_directory(directory):
                self._templates[(template.locale, template.name)] = template
        self.locales = sorted({locale for locale, _ in self._templates})
        # Compiled once: compiling is most of the cost of a render. A part without template
        # syntax (many subjects) is its own text: through Jinja it would cost a context of
        # its own, a third of a render.
        self._compiled: dict[tuple[str, str, str], JinjaTemplate | str] = {}
        for (locale, name), template in self._templates.items():
            for part in PARTS:
                source = getattr(template.body, part)
                if not any(tag in source for tag in _TEMPLATE_SYNTAX):
                    self._compiled[(locale, name, part)] = source.strip()
                    continue
                try:
                    self._compiled[(locale, name, part)] = self._env.from_string(source)
                except TemplateError as exc:
                    raise TemplateProblem(f"{template.path}: {part}: {exc}") from exc
        self._resolved: dict[tuple[str, str], Template] = {}

    def __iter__(self) -> Iterator[Template]:
        return iter(sorted(self._templates.values(), key=lambda t: (t.name, t.locale)))

    def resolve(self, name: str, locale: str) -> Template:
        """The most specific template in the customer's language, falling back first on the
        name (``a.b.c`` -> ``a.b`` -> ``a``), then on the language, then the default locale."""
        if (known := self._resolved.get((name, locale))) is not None:
            return known
        names = [".".join(name.split(".")[:n]) for n in range(name.count(".") + 1, 0, -1)]
        for candidate_locale in self._locale_chain(locale):
            for candidate in names:
                if (template := self._templates.get((candidate_locale, candidate))) is not None:
                    self._resolved[(name, locale)] = template
                    return template
        raise TemplateProblem(f"no template {name!r} for locale {locale!r} or its fallbacks")

    def _locale_chain(self, locale: str) -> list[str]:
        language = locale.split("-", maxsplit=1)[0].lower()
        same_language = [loc for loc in self.locales if loc.split("-")[0].lower() == language]
        exact = [loc for loc in self.locales if loc.lower() == locale.lower()]
        return list(dict.fromkeys([*exact, *same_language, self._default_locale]))

    def render(
        self,
        name: str,
        locale: str,
        timezone: str,
        variables: Mapping[str, Any],
        *,
        sms: bool = True,
    ) -> Rendered:
        """Render a message; ``sms=False`` skips the short form when no SMS will be sent
        (a third of the rendering time on the hot path)."""
        return self.render_template(self.resolve(name, locale), timezone, variables, sms=sms)

    def render_template(
        self,
        template: Template,
        timezone: str,
        variables: Mapping[str, Any],
        *,
        sms: bool = True,
    ) -> Rendered:
        context = {**variables, "_locale": template.locale, "_timezone": timezone}
        wanted = PARTS if sms else ("subject", "text")
        try:
            parts = {
                part: _render(self._compiled[(template.locale, template.name, part)], context)
                for part in wanted
            }
            parts.setdefault("sms", "")
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            # A bad value (an unparsable date, text where money belongs) is the command's
            # fault just like a missing variable: fail loudly with the template named.
            raise TemplateProblem(f"{template.path}: {type(exc).__name__}: {exc}") from exc
        return Rendered(
            template=template.name, locale=template.locale, variables=variables, **parts
        )


def _render(compiled: JinjaTemplate | str, context: Mapping[str, Any]) -> str:
    return compiled if isinstance(compiled, str) else compiled.render(context).strip()


def load_directory(directory: Path) -> list[Template]:
    templates = []
    for path in sorted(directory.glob("*/*.toml")):
        try:
            body = TemplateFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            raise TemplateProblem(f"{path}: {exc}") from exc
        templates.append(Template(name=path.stem, locale=path.parent.name, path=path, body=body))
    return templates

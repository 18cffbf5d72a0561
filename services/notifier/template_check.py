"""`followup templates check`: automatic review of every template (智能质检, domain-notes.md §4).

Each template is rendered with its own ``[sample]`` in its locale, and the rendered subject,
text and SMS are checked for banned phrases, an opening apology where the kind needs one,
a concrete next step or time, and the SMS length budget. Every kind must exist in each
required locale.
"""

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.notifier.policy import sms_length
from services.notifier.settings import TemplateRules
from services.notifier.templates import Rendered, Template, TemplateCatalog, TemplateProblem

SAMPLE_TIMEZONE = "Asia/Shanghai"

_APOLOGY = re.compile(r"抱歉|对不起|致歉|歉意|不好意思|sorry|apologi[sz]e|apologies", re.IGNORECASE)
# "王女士，您好！", "亲，", "Hi Emma," "Dear Mr Li," at the very start of a message.
_GREETING = re.compile(
    r"^\s*(?:[^！。\n]{0,20}?(?:您好|你好)[！!，,]|亲[，,]"
    r"|(?:hi|hello|dear|good (?:morning|afternoon|evening))\b[^,!.\n]{0,40}[,!])\s*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[。！？!?\n])|(?<=\.\s)")
# A time the customer can hold us to: a clock time, a date, or a span.
_TIME = re.compile(
    r"\d{1,2}:\d{2}|\d{1,2}月\d{1,2}日|\d+\s*(个)?(小时|天|分钟|工作日)|今天|今日|今晚|明天|24小时"
    r"|\b\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b"
    r"|\b(today|tonight|tomorrow)\b|\bwithin \w+ (hours?|days?|minutes?|working days?)\b"
    r"|\b\d+ (hours?|days?|minutes?|working days?)\b",
    re.IGNORECASE,
)
# Something the customer (or we) will do next.
_NEXT_STEP = re.compile(
    r"回复|联系我们|联系客服|点击|查看|我们会|我们将|我们已|已为您|将为您|会为您|请您|随时"
    r"|\breply\b|\bcontact us\b|\btap\b|\bclick\b|\btrack\b|\bwe will\b|\bwe'll\b|\bwe have\b"
    r"|\bwe've\b|\bplease\b|\bcheck\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    path: Path
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class CheckReport:
    checked: list[tuple[Template, Rendered | None]]
    findings: list[Finding]


def opening(text: str) -> str:
    """The first sentence after a greeting: where an apology must stand."""
    body = _GREETING.sub("", text.strip(), count=1)
    sentences = [s for s in _SENTENCE_END.split(body) if s.strip()]
    return sentences[0] if sentences else ""


def needs_apology(name: str, rules: TemplateRules) -> bool:
    return any(name == p or name.startswith(p + ".") for p in rules.apology_required)


def review(template: Template, rendered: Rendered, rules: TemplateRules) -> Iterator[Finding]:
    """The §4 rules on one rendered template."""
    banned = [p for p in [*rules.banned_phrases, *rules.extra_banned_phrases] if p.strip()]
    for part in ("subject", "text", "sms"):
        value: str = getattr(rendered, part)
        for phrase in banned:
            if phrase.casefold() in value.casefold():
                yield Finding(template.path, "banned_phrase", f"{part} contains {phrase!r}")
    if needs_apology(template.name, rules):
        for part in ("text", "sms"):
            first = opening(getattr(rendered, part))
            if not _APOLOGY.search(first):
                yield Finding(
                    template.path,
                    "apology_missing",
                    f"a {template.name} message must open with an apology; {part} opens "
                    f"with {first[:60]!r}",
                )
    for part in ("text", "sms"):
        value = getattr(rendered, part)
        if not (_TIME.search(value) or _NEXT_STEP.search(value)):
            yield Finding(
                template.path,
                "next_step_missing",
                f"{part} gives no concrete next step or time (a date, 'reply to this message', "
                "'we will update you today' …)",
            )
    length = sms_length(rendered.sms)
    if length.segments > rules.max_sms_segments:
        per = 70 if length.encoding == "UCS-2" else 160
        yield Finding(
            template.path,
            "sms_too_long",
            f"{length.units} {length.encoding} characters = {length.segments} segments "
            f"(budget {rules.max_sms_segments}; {per} per single segment, "
            f"{67 if per == 70 else 153} per part when split)",
        )


def check_templates(directories: Sequence[Path], rules: TemplateRules) -> CheckReport:
    """Review every template the notifier would use from these directories (earlier ones win,
    as NOTIFIER_TEMPLATES_DIR wins over ours)."""
    findings: list[Finding] = []
    try:
        catalog = TemplateCatalog(directories, default_locale=rules.required_locales[0])
    except TemplateProblem as exc:
        return CheckReport([], [Finding(Path(str(exc).split(":", 1)[0]), "unreadable", str(exc))])
    checked: list[tuple[Template, Rendered | None]] = []
    names: dict[str, set[str]] = {}
    for template in catalog:
        names.setdefault(template.name, set()).add(template.locale)
        try:
            rendered = catalog.render_template(template, SAMPLE_TIMEZONE, template.body.sample)
        except TemplateProblem as exc:
            findings.append(
                Finding(
                    template.path,
                    "render_failed",
                    f"{exc.__cause__ or exc} (does [sample] give every variable?)",
                )
            )
            checked.append((template, None))
            continue
        checked.append((template, rendered))
        findings.extend(review(template, rendered, rules))
    for name, locales in sorted(names.items()):
        for locale in rules.required_locales:
            if locale not in locales:
                some = next(t.path for t in catalog if t.name == name)
                findings.append(
                    Finding(
                        some.parent.parent / locale / f"{name}.toml",
                        "missing_locale",
                        f"{name} exists in {', '.join(sorted(locales))} but not in {locale}",
                    )
                )
    return CheckReport(checked, findings)

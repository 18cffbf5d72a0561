import random
from typing import Any

import pytest
from pydantic import EmailStr, TypeAdapter, ValidationError

from contracts import values
from contracts.values import EmailAddress

_LOCALS = [
    "wang.li",
    "Wang.Li+shop",
    "o'brien",
    "user_name-1",
    "{x}|~",
    "a",
    "x" * 64,
    "x" * 65,
    "postmaster",
    "PostMaster",
    "Abuse",
    ".a",
    "a.",
    "a..b",
    "",
    "a b",
    '"quoted"',
    '"a b"',
    '"a@b"',
    "王丽",
    "josé",
    "a\tb",
    "<a",
]
_DOMAINS = [
    "qq.com",
    "163.com",
    "Gmail.COM",
    "sub.mail.example.co.uk",
    "example.com",
    "localhost",
    "shop.localhost",
    "x.test",
    "mail.local",
    "b.invalid",
    "c.onion",
    "d.arpa",
    "intranet",
    "a.b",
    "1.2.3.4",
    "[127.0.0.1]",
    "xn--fiqs8s.cn",
    "XN--FIQS8S.CN",
    "xn--zz.com",
    "ab--cd.com",
    "-a.com",
    "a-.com",
    "a.com.",
    ".a.com",
    "a..com",
    "a" * 63 + ".com",
    "a" * 64 + ".com",
    "中国.cn",
    "MÜNCHEN.de",
    "a.123",
    "a.c0m",
    "",
    " qq.com",
    "qq.com ",
    "qq.com\n",
]


def _near_the_length_limit() -> list[str]:
    # A whole address may have 254 characters, as given, normalized and with its domain in IDNA
    # ASCII: addresses either side of that, also with a domain given in punycode (normalized, it
    # is shorter) and given in Chinese (its ASCII form is longer).
    host = ".".join(["a" * 61] * 3)
    return [
        f"{'x' * length}@{host}.{tld}"
        for tld in ("qq.com", "xn--fiqs8s.cn", "中国.cn")
        for length in range(50, 66)
    ]


def _corpus() -> list[str]:
    rng = random.Random(20261123)  # noqa: S311 - a fixed corpus, not a secret
    alphabet = "aZ9.-_+@ \"<>'é中"
    corpus = [f"{local}@{domain}" for local in _LOCALS for domain in _DOMAINS]
    corpus += ["Wang <wang@qq.com>", " wang@qq.com ", "wang@qq.com\n", "no-at-sign", "@qq.com"]
    corpus += _near_the_length_limit()
    for _ in range(3000):
        local = rng.choice(_LOCALS) if rng.random() < 0.5 else _random_text(rng, alphabet)
        domain = rng.choice(_DOMAINS) if rng.random() < 0.5 else _random_text(rng, alphabet)
        corpus.append(f"{local}@{domain}")
    return corpus


def _random_text(rng: random.Random, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def _outcome(adapter: TypeAdapter[str], value: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        return [error["msg"] for error in exc.errors()]


def test_email_addresses_are_checked_and_normalised_exactly_as_pydantic_does() -> None:
    ours, pydantic = TypeAdapter(EmailAddress), TypeAdapter(EmailStr)
    corpus = _corpus()
    outcomes = [(value, _outcome(ours, value), _outcome(pydantic, value)) for value in corpus]
    assert [o for o in outcomes if o[1] != o[2]] == []
    # The corpus reaches both sides: addresses accepted (some of them changed) and refused.
    accepted = [(value, mine) for value, mine, _ in outcomes if isinstance(mine, str)]
    assert 100 < len(accepted) < len(corpus) - 100
    assert any(value != normalized for value, normalized in accepted)


class _WholeCheckCalled(Exception):
    pass


def test_plain_addresses_skip_the_whole_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def whole_check(value: str) -> tuple[str, str]:
        raise _WholeCheckCalled(value)

    monkeypatch.setattr(values, "validate_email", whole_check)
    adapter = TypeAdapter(EmailAddress)
    assert adapter.validate_python("Wang.Li+shop@Example.COM") == "Wang.Li+shop@example.com"
    assert adapter.validate_python("li@xn--fiqs8s.cn") == "li@中国.cn"
    with pytest.raises(_WholeCheckCalled):
        adapter.validate_python("Postmaster@qq.com")

"""Value types shared by every contract: money, currency, locale, timezone, phone."""

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

_DECIMAL_STRING = re.compile(r"^-?\d+(\.\d+)?$")


def _decimal_string(value: Any) -> Decimal:
    # The contract sends money as a decimal string; a JSON number would already have been
    # rounded through a binary float on the platform side, so it is refused, not converted.
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not _DECIMAL_STRING.match(value):
        raise ValueError('must be a decimal string such as "99.00", not a JSON number')
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already rules this out
        raise ValueError('must be a decimal string such as "99.00"') from exc


Money = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    WithJsonSchema({"type": "string", "pattern": _DECIMAL_STRING.pattern, "examples": ["99.00"]}),
]
"""An amount of money as a decimal string, e.g. ``"99.00"``; never a float."""

CurrencyCode = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["CNY", "USD"])
]

Locale = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="BCP 47 language tag",
        examples=["zh-CN", "en"],
    ),
]


def _known_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA timezone {name!r}, e.g. 'Asia/Shanghai'") from exc
    return name


TimeZoneName = Annotated[
    str,
    AfterValidator(_known_timezone),
    Field(description="IANA timezone name", examples=["Asia/Shanghai"]),
]

_PHONE_SEPARATORS = re.compile(r"[\s\-().]")


def _e164(value: Any) -> Any:
    # Platforms often format numbers for people ("+86 138-1234-5678"); the digits are what count.
    return _PHONE_SEPARATORS.sub("", value) if isinstance(value, str) else value


PhoneNumber = Annotated[
    str,
    BeforeValidator(_e164),
    Field(
        pattern=r"^\+[1-9]\d{6,14}$", description="E.164 phone number", examples=["+8613812345678"]
    ),
]

"""Value types shared by every contract: money, currency, locale, timezone, phone, e-mail."""

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import email_validator
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
)
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic.networks import validate_email

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

_HOST_NAME = re.compile(r"[A-Za-z0-9.-]+\Z")


@lru_cache(maxsize=4096)
def _normalized_domain(domain: str) -> str | None:
    """The domain as email-validator normalizes it; None when it is not valid."""
    try:
        return email_validator.validate_email(f"x@{domain}", check_deliverability=False).domain
    except email_validator.EmailNotValidError:
        return None


def _email(value: str) -> str:
    # pydantic's EmailStr runs email-validator's whole check on every address, which cost more
    # than the rest of an order event (28 of 42 us to decode one). Most addresses are plain: an
    # ASCII dot-atom before the @, kept as it is, and an ASCII host name after it, whose check
    # depends on the domain alone and is cached (customers share a few dozen providers). Those
    # get the very result of the whole check, which a unit test compares on thousands of
    # addresses; anything else takes the whole check, with its error messages.
    local, _, domain = value.partition("@")
    if (
        DOT_ATOM_TEXT.match(local)
        and _HOST_NAME.match(domain)
        and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES
        and (normalized := _normalized_domain(domain)) is not None
    ):
        address = f"{local}@{normalized}"
        # email-validator also limits the length of the address with its domain in IDNA ASCII:
        # for an ASCII host name that is the domain given, lower-cased, so no longer.
        if max(len(value), len(address.encode())) <= EMAIL_MAX_LENGTH:
            return address
    return validate_email(value)[1]


EmailAddress = Annotated[
    str,
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email"}),
]
"""An e-mail address, normalized as pydantic's ``EmailStr`` does (domain lower-cased, IDNA
decoded); invalid ones are refused with email-validator's reason."""

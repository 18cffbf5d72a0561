"""Masking of personal data, for customer-facing summaries and for every log line."""

import re

_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
# E.164 numbers, and mainland mobile numbers written without the country code.
_PHONE = re.compile(r"(?<![\w-])(\+[1-9]\d{6,14}|1[3-9]\d{9})(?!\w)")
_CN_ADDRESS = re.compile(
    r"[\u4e00-\u9fa5A-Za-z0-9]{0,20}(?:路|街|道|巷|弄|大道|胡同)[\u4e00-\u9fa5A-Za-z0-9\-]{0,20}?"
    r"\d+\s*号(?:[\u4e00-\u9fa5A-Za-z0-9\-]{0,12}(?:室|楼|栋|幢|座|单元|层))*"
)
_EN_ADDRESS = re.compile(
    r"\b\d{1,6}[A-Za-z]?\s+(?:[A-Z][\w'.-]*\s+){0,4}"
    r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct|Place|Pl)\b\.?",
)
# Chinese mainland numbers read best split after the carrier prefix (138****5678).
_CN_MOBILE = re.compile(r"^(?:\+86)?(1[3-9]\d)(\d{4})(\d{4})$")


def mask_phone(phone: str) -> str:
    """``+8613812345678`` -> ``138****5678``; other numbers keep their prefix and last four."""
    if match := _CN_MOBILE.match(phone):
        return f"{match.group(1)}****{match.group(3)}"
    if len(phone) <= 6:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


def mask_email(email: str) -> str:
    """``zhang.wei@example.com`` -> ``z***@example.com``."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_street(street: str) -> str:
    """Keep the first characters so a customer recognises the address; hide the rest."""
    keep = 4 if re.search(r"[\u4e00-\u9fa5]", street) else 6
    return street[:keep] + "****" if len(street) > keep else "****"


def scrub(text: str) -> str:
    """Mask e-mail addresses, phone numbers and street addresses found in free text."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(1)), text)
    text = _CN_ADDRESS.sub("[地址已隐藏]", text)
    return _EN_ADDRESS.sub("[address hidden]", text)

import json
import logging

import pytest

from followup.logs import JsonFormatter, event_context
from followup.pii import mask_email, mask_phone, mask_street, scrub


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+8613812345678", "138****5678"),
        ("13812345678", "138****5678"),
        ("+14155550123", "+14*****0123"),
    ],
)
def test_phones_keep_only_what_a_customer_recognises(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_email_and_street_masks() -> None:
    assert mask_email("zhang.wei@example.com") == "z***@example.com"
    assert mask_street("世纪大道100号3栋1201室") == "世纪大道****"
    assert mask_street("221B Baker Street") == "221B B****"


def test_scrub_masks_personal_data_in_free_text_but_not_order_data() -> None:
    text = (
        "call +8613812345678 or 13912345678, mail zhang.wei@example.com, ship to 上海市浦东新区"
        "世纪大道100号3栋1201室 / 221B Baker Street; order O-1001 at 2026-11-22T10:00:00+08:00 "
        "total 599.00, tracking SF1234567890"
    )
    scrubbed = scrub(text)
    for secret in ("13812345678", "13912345678", "zhang.wei", "世纪大道100号", "Baker Street"):
        assert secret not in scrubbed
    for kept in ("O-1001", "2026-11-22T10:00:00+08:00", "599.00", "SF1234567890"):
        assert kept in scrubbed


def test_json_log_lines_carry_the_event_id_and_no_personal_data() -> None:
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "reminder to %s", ("+8613812345678",), None
    )
    record.shipping_address = {"street": "世纪大道100号"}
    record.order_id = "O-1"
    with event_context("evt-1"):
        line = json.loads(JsonFormatter("reminder").format(record))
    assert line["event_id"] == "evt-1"
    assert line["msg"] == "reminder to 138****5678"
    assert line["shipping_address"] == "[hidden]"
    assert line["order_id"] == "O-1"
    assert line["service"] == "reminder"

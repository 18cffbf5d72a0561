"""Steps out of order or twice never move a case back or repeat a message; events that cannot
be processed go to the dead-letter topic with the reason, and the next one is handled."""

from datetime import datetime, timedelta

import pytest

from tests.harness import cloud_event
from tests.integration.aftersales.conftest import T0, Rig
from tests.integration.aftersales.shop import aftersale

pytestmark = pytest.mark.integration


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


async def test_late_and_repeated_steps_never_go_back_or_repeat(rig: Rig) -> None:
    rig.clock.set(T0 + timedelta(hours=2))
    approved = aftersale("approved", "R-30", "O-30", minutes(30), event_id="evt-R-30-approved")
    for event in (aftersale("requested", "R-30", "O-30", T0), approved):
        await rig.publish(event)
        await rig.quiet()  # one at a time: steps arriving together say only the latest
    await rig.publish(approved)  # the very same event, delivered again
    await rig.publish(aftersale("approved", "R-30", "O-30", minutes(31)))  # republished, new id
    # The refund overtakes the warehouse's receipt on the way here.
    await rig.publish(aftersale("refunded", "R-30", "O-30", minutes(90), method="alipay"))
    await rig.quiet()
    await rig.publish(aftersale("return_received", "R-30", "O-30", minutes(80)))
    # A second case is answered after its return was already shipped.
    await rig.publish(aftersale("requested", "R-31", "O-30", T0))
    await rig.quiet()
    await rig.publish(aftersale("return_shipped", "R-31", "O-30", minutes(100)))
    await rig.quiet()
    await rig.publish(aftersale("approved", "R-31", "O-30", minutes(20)))
    await rig.quiet()
    # A third case whose steps all arrive at once: however they are batched, the case only
    # moves forward and says each thing at most once, ending where it stands.
    await rig.publish(
        aftersale("requested", "R-32", "O-32", T0),
        aftersale("approved", "R-32", "O-32", minutes(5)),
        aftersale("return_shipped", "R-32", "O-32", minutes(60)),
        aftersale("return_received", "R-32", "O-32", minutes(110)),
    )
    await rig.quiet()

    assert await rig.names("R-30") == ["requested", "approved", "refunded"]
    assert await rig.names("R-31") == ["requested", "return_shipped"]
    r32 = await rig.names("R-32")
    assert r32[-1] == "return_received"
    assert r32 == [
        s for s in ("requested", "approved", "return_shipped", "return_received") if s in r32
    ]
    cases = {
        r["case_id"]: r
        for r in await rig.db.fetch(
            "SELECT case_id, stage, approved_at, return_received_at FROM aftersales.cases"
        )
    }
    assert cases["R-30"]["stage"] == "refunded"
    assert cases["R-30"]["approved_at"] == minutes(30)  # the first report stands
    assert cases["R-30"]["return_received_at"] == minutes(80)  # remembered, not announced
    assert cases["R-31"]["stage"] == "return_shipped"
    # Receipt-to-refund is measured once both times are known, whatever order they came in.
    assert await rig.metric("followup_aftersales_receipt_to_refund_seconds_sum") == 600
    assert await rig.metric("followup_aftersales_stage_events_total", outcome="late") == 2
    assert await rig.metric("followup_aftersales_stage_events_total", outcome="duplicate") == 1
    assert (
        await rig.metric("followup_events_total", topic="shop.aftersales", outcome="duplicate") == 1
    )


async def test_bad_events_are_dead_lettered_with_the_reason_and_the_next_is_handled(
    rig: Rig,
) -> None:
    await rig.kafka.publish("shop.aftersales", b"{not json", key="O-40")
    no_case = aftersale("approved", "R-40", "O-40", T0)
    del no_case["data"]["case_id"]
    await rig.kafka.publish("shop.aftersales", no_case, key="O-40")
    unknown = cloud_event(
        "shop.aftersale.exploded",
        {"case_id": "R-40", "order_id": "O-40", "at": T0.isoformat()},
        time=T0,
    )
    await rig.kafka.publish("shop.aftersales", unknown, key="O-40")
    float_money = aftersale("requested", "R-41", "O-40", T0, amount=599.0, currency="CNY")
    await rig.kafka.publish("shop.aftersales", float_money, key="O-40")
    await rig.publish(aftersale("requested", "R-42", "O-42", T0))
    await rig.quiet()
    # The same case id under another order contradicts what we know: refused, not merged.
    conflicting = aftersale("approved", "R-42", "O-43", T0 + timedelta(minutes=5))
    await rig.kafka.publish("shop.aftersales", conflicting, key="O-43")
    await rig.kafka.publish("shop.orders", b"[]", key="O-44")
    await rig.publish(aftersale("approved", "R-42", "O-42", T0 + timedelta(minutes=6)))
    await rig.quiet()

    assert await rig.names("R-42") == ["requested", "approved"]
    dead = await rig.kafka.read_all("shop.aftersales.dlq", expected=5)
    # Dead letters keep the original key, so one order's stay in order on their partition.
    reasons = [dict(r.headers)["dlq-reason"].decode() for r in dead if r.key == b"O-40"]
    assert reasons[0].startswith("(message): Invalid JSON")
    assert reasons[1] == "data.case_id: Field required"
    assert "exploded" in reasons[2]
    assert reasons[3].startswith("data.amount: Value error, must be a decimal string")
    [conflict] = [dict(r.headers)["dlq-reason"].decode() for r in dead if r.key == b"O-43"]
    assert conflict.startswith("processing failed: CaseConflict('case R-42 belongs to order O-42")
    assert b"{not json" in [r.value for r in dead]
    assert {dict(r.headers)["dlq-service"] for r in dead} == {b"aftersales"}
    assert {dict(r.headers)["dlq-source-topic"] for r in dead} == {
        (rig.kafka.prefix + "shop.aftersales").encode()
    }
    [order] = await rig.kafka.read_all("shop.orders.dlq", expected=1)
    assert dict(order.headers)["dlq-service"] == b"aftersales"
    assert (
        await rig.metric("followup_events_total", topic="shop.aftersales", outcome="dead_lettered")
        == 5
    )
    assert (
        await rig.db.fetchval("SELECT order_id FROM aftersales.cases WHERE case_id = 'R-42'")
        == "O-42"
    )

"""Every stage message of the three kinds of case, through the real broker and database:
two cases on one order and a third on the same customer's other order, each on its own path."""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from followup import cli
from services.aftersales import store
from tests.harness import cloud_event, order_created, payment_succeeded
from tests.integration.aftersales.conftest import T0, Rig, gauge, utc
from tests.integration.aftersales.shop import aftersale

pytestmark = pytest.mark.integration

RETURN_PATH = ["requested", "approved", "return_shipped", "return_received", "refunded", "closed"]


def at(**delta: float) -> datetime:
    return T0 + timedelta(**delta)


async def step(rig: Rig, when: Any, *events: dict[str, Any]) -> None:
    """Time moves to ``when``, then the shop publishes what happened at that moment."""
    rig.clock.set(when)
    await rig.publish(*events)
    await rig.quiet()


async def test_each_case_is_told_every_stage_of_its_own_path(rig: Rig, database: str) -> None:
    deadline = T0 + timedelta(hours=24)
    await rig.publish(
        order_created("O-1", at=T0 - timedelta(days=5), deadline=deadline),
        order_created("O-2", at=T0 - timedelta(days=4), deadline=deadline),
        topic="shop.orders",
    )
    card = cloud_event(
        "shop.payment.succeeded",
        {
            "order_id": "O-2",
            "paid_at": T0.isoformat(),
            "amount": "599.00",
            "currency": "CNY",
            "method": "card",
        },
        time=T0,
    )
    await rig.publish(payment_succeeded("O-1", at=T0), card, topic="shop.payments")
    # Topics are not ordered with each other: let the order details land first, as they do
    # in life (orders are paid days before anyone asks for a refund).
    await rig.quiet()
    await step(
        rig,
        at(minutes=15),
        aftersale(
            "requested", "R-1", "O-1", T0, amount="599.00", currency="CNY", reason="尺码偏小"
        ),
        aftersale(
            "requested",
            "R-2",
            "O-1",
            at(minutes=10),
            kind="refund_only",
            amount="129.00",
            currency="CNY",
        ),
        aftersale("requested", "R-3", "O-2", at(minutes=12), kind="exchange"),
    )
    await step(
        rig,
        at(hours=2),
        aftersale("approved", "R-1", "O-1", at(hours=1)),
        aftersale("approved", "R-2", "O-1", at(hours=2)),
        aftersale("approved", "R-3", "O-2", at(hours=1.5)),
    )
    await step(
        rig,
        at(hours=3.5),
        aftersale(
            "refunded",
            "R-2",
            "O-1",
            at(hours=3),
            amount="129.00",
            currency="CNY",
            method="original",
        ),
        aftersale("closed", "R-2", "O-1", at(hours=3.25)),
    )
    await step(
        rig,
        at(days=1),
        aftersale(
            "return_shipped", "R-1", "O-1", at(days=1), carrier="中通快递", tracking_number="ZT1"
        ),
        aftersale(
            "return_shipped", "R-3", "O-2", at(days=1), carrier="顺丰速运", tracking_number="SF2"
        ),
    )
    # Two cases still open, both on their way back: the gauge operations watch says so.
    await gauge(rig, "followup_aftersales_open_cases", 2, stage="return_shipped")
    await step(
        rig,
        at(days=1, hours=20),
        aftersale("return_received", "R-1", "O-1", at(days=1, hours=20)),
        aftersale("return_received", "R-3", "O-2", at(days=1, hours=20)),
    )
    await step(
        rig,
        at(days=2, hours=3),
        aftersale(
            "refunded",
            "R-1",
            "O-1",
            at(days=2, hours=3),
            amount="599.00",
            currency="CNY",
            method="original",
        ),
        aftersale("closed", "R-3", "O-2", at(days=2, hours=3)),
    )
    await step(rig, at(days=2, hours=4), aftersale("closed", "R-1", "O-1", at(days=2, hours=4)))

    assert await rig.names("R-1") == RETURN_PATH
    assert await rig.names("R-2") == ["requested", "approved", "refunded", "closed"]
    assert await rig.names("R-3") == [
        "requested",
        "approved",
        "return_shipped",
        "return_received",
        "closed",
    ]

    sends = await rig.sends()
    for command in sends:
        assert command["kind"] == "aftersale_progress"
        assert command["message_class"] == "transactional"
        assert command["priority"] == "high"
        # After-sales events carry no customer: the notifier finds the recipient by order.
        assert {"customer_id", "locale", "timezone"}.isdisjoint(command)
        stage = command["meta"]["stage"]
        assert command["idempotency_key"] == f"aftersale_progress:{command['case_id']}:{stage}"
        assert command["template"] == f"aftersale_progress.{stage}.{command['variables']['kind']}"
        assert command["variables"]["stage"] == stage
        assert command["variables"]["customer_name"] == "王女士"
        assert command["variables"]["item_title"] == "羊毛混纺大衣"
        assert command["source_event_id"]
    assert {r["_key"] for r in rig.log.records} == {"O-1", "O-2"}  # keyed by order

    by_key = {c["idempotency_key"]: c for c in sends}
    requested = by_key["aftersale_progress:R-1:requested"]
    assert requested["variables"]["answer_by"] == utc(at(hours=12))
    assert requested["variables"]["reason"] == "尺码偏小"
    assert requested["meta"]["promises"] == {
        "first_answer": {"due_at": utc(at(hours=12)), "outcome": "open"}
    }
    approved = by_key["aftersale_progress:R-1:approved"]
    assert approved["variables"]["ship_back_by"] == utc(at(hours=1, days=7))
    refund_only = by_key["aftersale_progress:R-2:approved"]
    assert refund_only["variables"]["refund_by"] == utc(at(hours=26))
    assert (refund_only["variables"]["amount"], refund_only["variables"]["refund_method"]) == (
        "129.00",
        "alipay",
    )
    shipped = by_key["aftersale_progress:R-1:return_shipped"]
    assert (shipped["variables"]["carrier"], shipped["variables"]["tracking_number"]) == (
        "中通快递",
        "ZT1",
    )
    received = by_key["aftersale_progress:R-3:return_received"]
    assert received["variables"]["replacement_by"] == utc(at(days=3, hours=20))
    refunded = by_key["aftersale_progress:R-1:refunded"]
    assert refunded["variables"]["refund_method"] == "alipay"  # 'original': how O-1 was paid
    assert refunded["variables"]["money_expected_by"] == utc(at(days=2, hours=5))
    assert refunded["variables"]["apologise"] is False
    closed = by_key["aftersale_progress:R-1:closed"]
    assert closed["variables"]["reopen_by"] == utc(at(days=17, hours=4))

    # Each step withdrew the previous step's message in case it was still queued.
    cancelled = {key for c in await rig.cancels() for key in c["idempotency_keys"]}
    assert "aftersale_progress:R-1:approved" in cancelled
    assert "aftersale_progress:R-1:refunded" not in cancelled  # outcomes stand

    kept = {
        promise: await rig.metric(
            "followup_aftersales_promises_total", promise=promise, outcome="kept"
        )
        for promise in ("first_answer", "refund", "replacement", "progress")
    }
    # Progress is kept by every real step that came within a day while the shop had the move.
    assert kept == {"first_answer": 3, "refund": 2, "replacement": 1, "progress": 8}
    assert await rig.metric("followup_aftersales_promises_total", outcome="breached") == 0
    # Time in each stage, from the steps' own times: every case left "requested" once.
    stage_seconds = "followup_aftersales_stage_seconds"
    assert await rig.metric(f"{stage_seconds}_count", stage="requested") == 3
    assert (
        await rig.metric(f"{stage_seconds}_sum", stage="return_shipped", kind="exchange")
        == 20 * 3600
    )
    assert await rig.metric("followup_aftersales_receipt_to_refund_seconds_count") == 1
    assert await rig.metric("followup_aftersales_receipt_to_refund_seconds_sum") == 7 * 3600
    assert await rig.db.fetchval("SELECT count(*) FROM aftersales.timers") == 0

    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli.app, ["history", "--customer", "C-1"], env={"DATABASE_URL": database}
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " aftersales " in line]
    assert any("case R-3 message closed sent" in line and " O-2 " in line for line in lines)
    assert any("case R-1 refund promise kept" in line for line in lines)
    assert sum("case R-2 " in line for line in lines) >= 4

    # Order details nobody will need are forgotten; those of orders with a case are kept.
    conn = await asyncpg.connect(database, server_settings={"search_path": "aftersales"})
    try:
        await conn.execute(
            "INSERT INTO orders (order_id, updated_at) VALUES ('O-old', $1), ('O-new', $2)",
            T0 - timedelta(days=200),
            T0,
        )
        assert await store.forget_orders(conn, T0 - timedelta(days=180)) == 1
        assert await store.forget_orders(conn, T0 + timedelta(days=365)) == 1  # O-new
        assert {r["order_id"] for r in await conn.fetch("SELECT order_id FROM orders")} == {
            "O-1",
            "O-2",
        }
    finally:
        await conn.close()

"""Bad input goes to the dead-letter topic with the reason; a database outage loses nothing;
two replicas share the work and still send each message once."""

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.harness import Kafka, eventually, payment_succeeded
from tests.integration.logistics.conftest import T0, Logistics
from tests.integration.logistics.events import dispatched, scanned

pytestmark = pytest.mark.integration

H = timedelta(hours=1)


async def test_invalid_events_are_dead_lettered_with_the_reason_and_the_next_is_processed(
    logistics: Logistics, kafka: Kafka
) -> None:
    s = logistics
    await s.ship(dispatched("O-1", "S-1", at=T0))
    await s.applied(1)
    await kafka.publish("shop.shipments", b"{not json", key="O-1")
    missing = scanned("O-1", "S-1", "in_transit", at=T0 + H)
    del missing["data"]["shipment_id"]
    unknown_status = scanned("O-1", "S-1", "teleported", at=T0 + H)
    other_order = scanned("O-2", "S-1", "lost", at=T0 + H)  # S-1 belongs to O-1
    await s.ship(missing, unknown_status, other_order)
    bad_amount = payment_succeeded("O-3", at=T0)
    bad_amount["data"]["amount"] = 599.0
    await s.publish("shop.payments", bad_amount)
    await s.ship(scanned("O-1", "S-1", "lost", at=T0 + 2 * H))

    (notice, escalation) = await s.sent(2)
    assert notice["template"] == "shipment_exception.lost"
    assert escalation["kind"] == "ops_escalation"
    dead = await kafka.read_all("shop.shipments.dlq", expected=4)
    # O-2's record sits on another partition: the order across partitions is not fixed.
    reasons = sorted(dict(r.headers)["dlq-reason"].decode() for r in dead)
    assert reasons[0].startswith("(message): Invalid JSON")
    assert reasons[1] == "data.shipment_id: Field required"
    assert reasons[2].startswith("data.status: Input should be 'info_received'")
    assert reasons[3].startswith("processing failed: ShipmentConflict(")
    assert "shipment S-1 belongs to order O-1, not O-2" in reasons[3]
    assert {dict(r.headers)["dlq-service"] for r in dead} == {b"logistics"}
    (payment,) = await kafka.read_all("shop.payments.dlq", expected=1)
    assert dict(payment.headers)["dlq-reason"].decode().startswith("data.amount:")
    assert (
        await s.db.fetchval("SELECT last_status FROM logistics.shipments WHERE shipment_id = 'S-1'")
        == "lost"
    )


async def test_a_database_outage_loses_nothing_and_sends_nothing_twice(
    logistics: Logistics, kafka: Kafka, database: str, postgres_server: str
) -> None:
    s = logistics
    name = urlsplit(database).path.lstrip("/")
    await s.ship(dispatched("O-1", "S-1", at=T0), scanned("O-1", "S-1", "in_transit", at=T0 + H))
    await s.applied(2)
    admin = await asyncpg.connect(postgres_server)
    try:
        # An outage without stopping the shared server: no new connections, existing ones cut.
        await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        # While it lasts: S-1's stall timer comes due, and a lost parcel is reported.
        s.clock.advance(25 * H)
        await s.ship(
            dispatched("O-2", "S-2", at=T0 + 20 * H),
            scanned("O-2", "S-2", "lost", at=T0 + 24 * H),
        )
        await eventually(
            lambda: s.metric('followup_transient_errors_total{component="consumer"}'),
            lambda n: n >= 1,
            what="the consumer failing to reach the database",
        )
        # The timer loop either fails on its own or is held back by that waiting batch (it
        # must not fire a check before the scans fetched meanwhile are stored): both retry.
        await eventually(
            lambda: s.metric('followup_consumer_batches_waiting{topic="shop.shipments"}'),
            lambda n: n >= 1,
            what="the shipment batch waiting for the database",
        )
    finally:
        await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        await admin.close()
    s.db = await asyncpg.connect(database)
    try:
        messages = await s.sent(3)
        assert sorted(m["idempotency_key"] for m in messages) == [
            "ops_escalation:S-2:1:lost",
            "shipment_delay:S-1:1:notice",
            "shipment_exception:S-2:1:notice",
        ]
        # Nothing more arrives later from a batch or a timer retried after the outage.
        await s.advance(H)
        await s.sent(3)
    finally:
        await s.db.close()


async def test_two_replicas_share_the_shipments_and_send_each_notice_once(
    logistics_with: Any,
) -> None:
    s: Logistics = await logistics_with(replicas=2)
    shipments = [(f"O-{n}", f"S-{n}") for n in range(30)]
    await s.ship(*(dispatched(o, sid, at=T0) for o, sid in shipments))
    await s.applied(30)
    await s.advance(24 * H)
    messages = await s.sent(30)
    assert sorted(m["idempotency_key"] for m in messages) == sorted(
        f"shipment_delay:{sid}:1:notice" for _, sid in shipments
    )
    assert await s.metric('followup_timers_fired_total{kind="shipment_check"}') == 30

"""Nothing is lost or doubled when the database closes its doors for a while, and any number
of replicas share the work: each case's messages exactly once, each timer fired once."""

from datetime import timedelta

import asyncpg
import pytest

from services.aftersales.app import create_app
from tests.harness import Kafka, eventually, order_created, payment_succeeded, running
from tests.integration.aftersales.conftest import T0, Rig, settings
from tests.integration.aftersales.shop import aftersale

pytestmark = pytest.mark.integration


async def test_nothing_is_lost_while_the_database_refuses_connections(
    rig: Rig, database: str, postgres_server: str
) -> None:
    # R-49's first answer falls due two minutes into the outage.
    await rig.publish(aftersale("requested", "R-49", "O-49", T0 - timedelta(hours=11, minutes=58)))
    await rig.publish(aftersale("requested", "R-50", "O-50", T0))
    await rig.quiet()
    name = await rig.db.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(postgres_server)
    # The outage, without stopping the shared server: no new connections, existing ones cut.
    await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )
    try:
        during = T0 + timedelta(minutes=1)
        await rig.publish(aftersale("approved", "R-50", "O-50", during))
        await rig.publish(
            *(aftersale("requested", f"R-5{n}", f"O-5{n}", during) for n in range(1, 6))
        )
        rig.clock.advance(timedelta(minutes=5))
        for component in ("consumer", "outbox"):
            await eventually(
                lambda c=component: rig.metric("followup_transient_errors_total", component=c),  # type: ignore[misc]
                lambda n: n > 0,
                what=f"the {component} meeting the outage",
            )
        # The timer loop either fails on its own or is held back by that waiting batch (no
        # timer fires before the events fetched meanwhile are stored): both retry.
        await eventually(
            lambda: rig.metric("followup_consumer_batches_waiting", topic="shop.aftersales"),
            lambda n: n > 0,
            what="the after-sales batch waiting for the database",
        )
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    rig.db = await asyncpg.connect(database)  # the test's own connection was cut too
    await rig.quiet("recovery after the outage", timeout_s=90)

    assert await rig.names("R-49") == ["requested", "escalation.first_answer"]
    assert await rig.names("R-50") == ["requested", "approved"]
    for n in range(1, 6):
        assert await rig.names(f"R-5{n}") == ["requested"]
    assert await rig.kafka.read_all("shop.aftersales.dlq", expected=1, timeout_s=1) == []
    assert await rig.metric("followup_events_total", outcome="dead_lettered") == 0


async def test_two_replicas_share_cases_and_timers_without_doubling(
    rig: Rig, kafka: Kafka, database: str
) -> None:
    second = create_app(settings(kafka, database), clock=rig.clock)
    cases = [(f"R-6{n:02d}", f"O-6{n:02d}") for n in range(24)]
    async with running(second):
        await rig.publish(*(aftersale("requested", c, o, T0, kind="refund_only") for c, o in cases))
        await rig.quiet()
        rig.clock.set(T0 + timedelta(hours=1))
        await rig.publish(*(aftersale("approved", c, o, T0 + timedelta(hours=1)) for c, o in cases))
        await rig.quiet()
        # Half are refunded in time; the refund promise of the other half breaks at 25 h.
        rig.clock.set(T0 + timedelta(hours=2))
        await rig.publish(
            *(aftersale("refunded", c, o, T0 + timedelta(hours=2)) for c, o in cases[::2])
        )
        await rig.quiet()
        await rig.advance(timedelta(hours=23))
        await rig.advance(timedelta(hours=24))
        both = [rig.app, second]
        claimed_by = [
            await Rig(kafka, rig.clock, rig.db, app, rig.log).metric(
                "followup_events_total", topic="shop.aftersales", outcome="processed"
            )
            for app in both
        ]
        fired = [
            await Rig(kafka, rig.clock, rig.db, app, rig.log).metric("followup_timers_fired_total")
            for app in both
        ]
    # The remaining replica takes over every topic before the test ends: the embedded broker
    # keeps a group rebalancing if its last member leaves in the middle of a rebalance.
    await rig.publish(aftersale("requested", "R-699", "O-699", rig.clock.now()))
    await rig.publish(
        order_created("O-699", at=T0, deadline=T0 + timedelta(days=1)), topic="shop.orders"
    )
    await rig.publish(payment_succeeded("O-699", at=T0), topic="shop.payments")
    await rig.quiet("the remaining replica owning every partition")

    assert all(n > 0 for n in claimed_by), f"both replicas consumed: {claimed_by}"
    assert sum(fired) > 0
    sends = await rig.sends()
    keys = [s["idempotency_key"] for s in sends]
    assert len(keys) == len(set(keys)), "a message was decided twice"
    for index, (case_id, _) in enumerate(cases):
        names = [k.rsplit(":", 1)[-1] for k in keys if f":{case_id}:" in k]
        if index % 2 == 0:
            assert names == ["requested", "approved", "refunded"], case_id
        else:
            assert names == [
                "requested",
                "approved",
                "still_on_it.1",
                "escalation.refund",
                "still_on_it.2",
                "escalation.progress.2",
            ], case_id

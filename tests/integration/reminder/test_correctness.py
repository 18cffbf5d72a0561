"""At most one command per (order, tier) across duplicates and two replicas in one consumer
group; invalid events dead-lettered; a database outage stops commits and loses nothing."""

import json
from collections import Counter
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from followup.kafka import consumer_group
from followup.stack.embedded import with_database
from tests.harness import Kafka, eventually
from tests.integration.reminder.conftest import (
    T0,
    order_event,
    paid_event,
    reminder_under_test,
)

pytestmark = pytest.mark.integration


async def test_two_replicas_and_duplicates_give_one_command_per_order_and_tier(
    kafka: Kafka, database: str, tmp_path: Path
) -> None:
    policy = tmp_path / "followup.toml"
    policy.write_text('[reminder]\nmin_gap = "1m"\n', encoding="utf-8")
    # Small timer batches: each replica runs several timer loops, and the first replica's
    # loops, woken first by the clock, can otherwise claim all 60 due timers in 3 batches.
    async with reminder_under_test(
        kafka, database, policy, replicas=2, kafka_batch_max_records=20, timer_batch_size=5
    ) as r:
        orders = [order_event(f"O-{n}", at=T0, customer_id=f"C-{n}") for n in range(60)]
        await r.orders(*orders)
        await r.orders(*orders[:30])  # the same events again
        # The same orders republished under new event ids.
        await r.orders(*(order_event(f"O-{n}", at=T0, customer_id=f"C-{n}") for n in range(20)))
        await eventually(
            lambda: r.db.fetchval("SELECT count(*) FROM reminder.timers"),
            lambda n: n == 60,
            what="the first tier of each of the 60 orders (each schedules the next)",
        )

        async def handled() -> float:
            return sum(
                [await r.metric('followup_events_total{outcome="processed"', n) for n in (0, 1)]
            )

        await eventually(handled, lambda n: n == 110, what="every record, duplicates included")
        await r.advance(timedelta(minutes=15))
        await r.advance(timedelta(hours=3))
        sends = await r.sends(120)
        keys = Counter(s["idempotency_key"] for s in sends)
        assert len(keys) == 120
        assert set(keys.values()) == {1}
        assert (
            await r.db.fetchval(
                "SELECT count(*) FROM reminder.reminder_decisions WHERE decision = 'sent'"
            )
            == 120
        )
        # Both replicas did part of the work: consumed records and fired timers.
        for replica in (0, 1):
            assert await r.metric('followup_events_total{outcome="processed"', replica) > 0
            assert await r.metric("followup_timers_fired_total", replica) > 0


async def test_invalid_events_are_dead_lettered_and_the_rest_is_processed(
    kafka: Kafka, database: str, tmp_path: Path
) -> None:
    policy = tmp_path / "followup.toml"
    policy.write_text("", encoding="utf-8")
    async with reminder_under_test(kafka, database, policy) as r:
        float_amount = paid_event("O-1", at=T0)
        float_amount["data"]["amount"] = 599.0
        await kafka.publish("shop.payments", float_amount, key="O-1")
        no_deadline = order_event("O-2", at=T0)
        del no_deadline["data"]["pay_deadline"]
        await kafka.publish("shop.orders", no_deadline, key="O-2")
        await r.orders(order_event("O-3", at=T0))
        await r.decided("O-3", 3)
        payments_dlq = await kafka.read_all("shop.payments.dlq", expected=1)
        orders_dlq = await kafka.read_all("shop.orders.dlq", expected=1)
        assert dict(payments_dlq[0].headers)["dlq-reason"].decode() == (
            'data.amount: Value error, must be a decimal string such as "99.00", not a JSON number'
        )
        assert dict(orders_dlq[0].headers)["dlq-reason"].decode() == (
            "data.pay_deadline: Field required"
        )
        assert json.loads(orders_dlq[0].value)["data"]["order_id"] == "O-2"


async def test_a_database_outage_stops_commits_and_nothing_is_lost(
    kafka: Kafka, database: str, postgres_server: str, tmp_path: Path
) -> None:
    policy = tmp_path / "followup.toml"
    policy.write_text("", encoding="utf-8")
    name = urlsplit(database).path.lstrip("/")
    admin = await asyncpg.connect(with_database(postgres_server, "postgres"))
    try:
        async with reminder_under_test(kafka, database, policy) as r:
            await r.orders(order_event("O-before", at=T0))
            await r.decided("O-before", 3)
            await r.db.close()

            await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )
            await r.orders(*(order_event(f"O-{n}", at=T0, customer_id=f"C-{n}") for n in range(20)))
            await r.payments(paid_event("O-before", at=T0 + timedelta(minutes=1)))
            r.clock.advance(timedelta(minutes=15))  # the timers are due while the DB is away
            for topic in ("shop.orders", "shop.payments"):
                series = f'followup_consumer_batches_waiting{{topic="{topic}"}}'
                await eventually(
                    partial(r.metric, series),
                    lambda n: n >= 1,
                    what=f"a batch of {topic} waiting for the unavailable database",
                )
            committed = await kafka.committed(
                consumer_group("reminder", kafka.prefix + "shop.orders"), "shop.orders"
            )
            await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")

            r.db = await asyncpg.connect(database)
            await eventually(
                lambda: r.db.fetchval(
                    "SELECT count(DISTINCT order_id) FROM reminder.reminder_decisions "
                    "WHERE order_id LIKE 'O-%' AND order_id <> 'O-before'"
                ),
                lambda n: n == 20,
                what="every order of the outage planned",
                timeout_s=60,
            )
            await r.timers_settled()
            outage_orders = {f"O-{n}" for n in range(20)}

            async def published() -> list[dict[str, Any]]:
                records = await kafka.read_all("followup.notifications", 10_000, timeout_s=0.5)
                return [json.loads(record.value) for record in records]

            def complete(commands: list[dict[str, Any]]) -> bool:
                sent = {c["data"]["order_id"] for c in commands if c["type"].endswith(".send")}
                return outage_orders | {"O-before"} <= sent

            commands = await eventually(published, complete, what="every command published")
            sends = [c["data"] for c in commands if c["type"] == "followup.notification.send"]
            keys = {s["idempotency_key"]: s for s in sends}  # a republished one counts once
            reminded = sorted(
                s["order_id"] for s in keys.values() if s["kind"] == "unpaid_reminder"
            )
            # O-before's first tier fell due during the outage too, but the payment fetched
            # then is stored before any timer fires (PendingBatches): no reminder for it.
            assert reminded == sorted(outage_orders)
            assert [s["order_id"] for s in keys.values() if s["kind"] == "order_confirmation"] == [
                "O-before"
            ]
            assert (
                await kafka.committed(
                    consumer_group("reminder", kafka.prefix + "shop.orders"), "shop.orders"
                )
                > committed
            )
    finally:
        await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        await admin.close()

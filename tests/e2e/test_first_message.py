"""From a shop event on Kafka to the customer's gateway, with every service in its own process.

Events are published as plain JSON with a plain Kafka producer, not through our code; the
gateway is a real HTTP server on loopback that checks the signature.
"""

import asyncio
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from followup.demo.receiver import WebhookReceiver
from followup.kafka import consumer_group
from tests.e2e.conftest import SECRET, ServiceProcess
from tests.harness import Kafka, eventually, order_created, payment_succeeded

pytestmark = pytest.mark.e2e


async def _count(receiver: WebhookReceiver, order_id: str) -> int:
    return sum(1 for m in receiver.accepted if m.payload["order_id"] == order_id)


async def test_order_reaches_the_gateway_signed_and_exactly_as_the_contract_says(
    kafka: Kafka, services: dict[str, ServiceProcess], receiver: tuple[WebhookReceiver, str]
) -> None:
    gateway, _ = receiver
    now = datetime.now(UTC)
    await kafka.publish(
        "shop.orders",
        order_created(
            "O-E1", at=now, deadline=now + timedelta(hours=24), locale="en", customer_id="C-9"
        ),
        key="O-E1",
    )
    await eventually(lambda: _count(gateway, "O-E1"), lambda n: n == 1, what="the reminder")

    message = gateway.accepted[0]
    expected_signature = (
        "sha256=" + hmac.new(SECRET.encode(), message.body, hashlib.sha256).hexdigest()
    )
    assert message.headers["x-signature"] == expected_signature
    assert message.headers["content-type"] == "application/json"
    assert message.headers["idempotency-key"] == "unpaid_reminder:O-E1:1"
    body = json.loads(message.body)
    assert body["idempotency_key"] == "unpaid_reminder:O-E1:1"
    assert body["kind"] == "unpaid_reminder"
    assert (body["order_id"], body["customer_id"], body["case_id"]) == ("O-E1", "C-9", None)
    assert body["locale"] == "en"
    assert body["subject"]
    assert "O-E1" in body["text"]
    assert body["meta"] == {"tier": 1, "segment": "new"}
    uuid.UUID(body["message_id"])
    datetime.fromisoformat(body["created_at"])


async def test_duplicate_events_and_a_redelivered_batch_produce_one_message(
    kafka: Kafka,
    database: str,
    services: dict[str, ServiceProcess],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    gateway, _ = receiver
    now = datetime.now(UTC)
    deadline = now + timedelta(hours=24)
    event = order_created("O-E2", at=now, deadline=deadline, event_id="evt-O-E2")
    await kafka.publish("shop.orders", event, key="O-E2")
    await kafka.publish("shop.orders", event, key="O-E2")  # the same event, delivered twice
    # The same order again under a new event id: the natural key (order, tier) still holds.
    await kafka.publish("shop.orders", order_created("O-E2", at=now, deadline=deadline), key="O-E2")

    processed = 'followup_events_total{outcome="processed",topic="shop.orders"}'
    db = await asyncpg.connect(database)
    try:
        group = consumer_group("reminder", kafka.prefix + "shop.orders")
        await eventually(
            lambda: kafka.committed(group, "shop.orders"),
            lambda n: n == 3,
            what="all three records handled and their offsets committed",
        )
        # Crash the reminder before the tier is due, rewind its consumer group to the start
        # of the topic and start it again: the whole batch is delivered a second time.
        services["reminder"].crash()
        await _rewind(
            kafka, consumer_group("reminder", kafka.prefix + "shop.orders"), "shop.orders"
        )
        await services["reminder"].start()
        # The restarted process (its counters start at zero) really reads all three again;
        # the order, known by its id, is not planned a second time.
        await eventually(
            lambda: _metric(services["reminder"], processed),
            lambda n: n >= 3,
            what="the redelivered records",
        )

        await eventually(lambda: _count(gateway, "O-E2"), lambda n: n >= 1, what="the reminder")
        # A control order published after everything above proves the pipeline moved past it.
        # Another customer: one customer's reminders keep a two-hour gap across orders.
        await kafka.publish(
            "shop.orders",
            order_created("O-E3", at=datetime.now(UTC), deadline=deadline, customer_id="C-3"),
            key="O-E3",
        )
        await eventually(lambda: _count(gateway, "O-E3"), lambda n: n == 1, what="control reminder")
        assert await _count(gateway, "O-E2") == 1
        sent = await db.fetchval(
            "SELECT count(*) FROM reminder.reminder_decisions "
            "WHERE order_id = 'O-E2' AND decision = 'sent'"
        )
        assert sent == 1
    finally:
        await db.close()


async def _metric(service: ServiceProcess, series: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series)
    )


async def _rewind(kafka: Kafka, group_id: str, topic: str) -> None:
    """Join the crashed service's consumer group, take over its partitions once the dead
    member's session expires, and commit offset 0 on each: the next member rereads it all."""
    consumer = AIOKafkaConsumer(
        kafka.prefix + topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(kafka.prefix + topic) or set()

        async def own_every_partition() -> int:
            await consumer.getmany(timeout_ms=100)
            return len(consumer.assignment())

        await eventually(own_every_partition, lambda n: n == len(partitions), what="assignment")
        assignment = sorted(consumer.assignment())
        committed = {tp: await consumer.committed(tp) for tp in assignment}
        assert any(committed.values()), f"nothing was committed for {group_id}: {committed}"
        await consumer.commit(dict.fromkeys(assignment, 0))
    finally:
        await consumer.stop()


async def test_malformed_message_goes_to_the_dead_letter_topic_and_the_next_is_delivered(
    kafka: Kafka, services: dict[str, ServiceProcess], receiver: tuple[WebhookReceiver, str]
) -> None:
    gateway, _ = receiver
    now = datetime.now(UTC)
    await kafka.publish("shop.orders", b"{not json", key="O-E4")
    broken = order_created("O-E4", at=now, deadline=now + timedelta(hours=24))
    del broken["data"]["customer"]["id"]
    await kafka.publish("shop.orders", broken, key="O-E4")
    await kafka.publish(
        "shop.orders", order_created("O-E5", at=now, deadline=now + timedelta(hours=24)), key="O-E5"
    )

    await eventually(
        lambda: _count(gateway, "O-E5"), lambda n: n == 1, what="the valid order's reminder"
    )
    # Every service consuming shop.orders (the reminder, and the notifier for recipients)
    # dead-letters what it cannot read, each with its own name.
    letters = await kafka.read_all("shop.orders.dlq", expected=4)
    by_service: dict[bytes, list[Any]] = {}
    for record in letters:
        by_service.setdefault(dict(record.headers)["dlq-service"], []).append(record)
    assert set(by_service) == {b"reminder", b"notifier"}
    for dead in by_service.values():
        assert dead[0].value == b"{not json"
        reasons = [dict(r.headers)["dlq-reason"].decode() for r in dead]
        assert reasons[0].startswith("(message): Invalid JSON")
        assert reasons[1] == "data.customer.id: Field required"
        assert [r.key for r in dead] == [b"O-E4", b"O-E4"]


async def test_payment_before_the_due_time_sends_nothing(
    kafka: Kafka, services: dict[str, ServiceProcess], receiver: tuple[WebhookReceiver, str]
) -> None:
    gateway, _ = receiver
    now = datetime.now(UTC)
    deadline = now + timedelta(hours=24)
    await kafka.publish(
        "shop.payments", payment_succeeded("O-E6", at=now), key="O-E6"
    )  # before its order
    await kafka.publish("shop.orders", order_created("O-E6", at=now, deadline=deadline), key="O-E6")
    await kafka.publish("shop.orders", order_created("O-E7", at=now, deadline=deadline), key="O-E7")
    await kafka.publish("shop.payments", payment_succeeded("O-E7", at=now), key="O-E7")
    await kafka.publish("shop.orders", order_created("O-E8", at=now, deadline=deadline), key="O-E8")

    await eventually(lambda: _count(gateway, "O-E8"), lambda n: n == 1, what="control reminder")
    reminded = {
        m.payload["order_id"] for m in gateway.received if m.payload["kind"] == "unpaid_reminder"
    }
    assert reminded == {"O-E8"}


async def test_followup_up_runs_the_stack_and_stops_cleanly_on_ctrl_c(
    kafka: Kafka, stack_env: dict[str, str], receiver: tuple[WebhookReceiver, str]
) -> None:
    gateway, _ = receiver
    process = subprocess.Popen(
        [sys.executable, "-m", "followup", "up", "--base-port", "0"],
        env=stack_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        lines: list[str] = []

        async def stack_up() -> bool:
            assert process.stdout is not None
            line = await asyncio.to_thread(process.stdout.readline)
            lines.append(line.decode())
            if process.poll() is not None:
                raise AssertionError("followup up exited:\n" + "".join(lines))
            return "stack is up" in lines[-1]

        await eventually(stack_up, timeout_s=90, what="followup up")
        now = datetime.now(UTC)
        await kafka.publish(
            "shop.orders",
            order_created("O-E9", at=now, deadline=now + timedelta(hours=2)),
            key="O-E9",
        )
        await eventually(lambda: _count(gateway, "O-E9"), lambda n: n == 1, what="the reminder")
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(process.wait, 60)
    assert code == 0

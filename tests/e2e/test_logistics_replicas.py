"""The logistics service as two processes started the way an operator starts them: one is
killed mid-work and restarted; every notice still goes out, each decided once."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ServiceProcess
from tests.harness import Kafka, eventually
from tests.integration.logistics.events import dispatched, scanned

pytestmark = pytest.mark.e2e

POLICY = """
[logistics]
stalled_after = { express = "4s", standard = "1h" }
stalled_red_after = { express = "1h", standard = "2h" }
first_followup_after = "10m"
followup_every = "1h"
min_gap = "1s"
"""


@pytest.fixture
async def replicas(
    stack_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[list[ServiceProcess]]:
    policy = tmp_path / "logistics.toml"
    policy.write_text(POLICY)
    env = {**stack_env, "FOLLOWUP_POLICY_FILE": str(policy)}
    started = [ServiceProcess("logistics", env) for _ in range(2)]
    await asyncio.gather(*(p.start() for p in started))
    yield started
    for process in started:
        await process.stop()


async def _commands(kafka: Kafka, at_least: int) -> list[dict[str, Any]]:
    records = await kafka.read_all("followup.notifications", expected=at_least, timeout_s=60)
    return [json.loads(r.value)["data"] for r in records]


async def test_a_killed_replica_loses_nothing_and_its_peer_keeps_the_promises(
    kafka: Kafka, replicas: list[ServiceProcess]
) -> None:
    now = datetime.now(UTC)
    parcels = [(f"O-{n}", f"S-{n}") for n in range(12)]
    for order_id, shipment_id in parcels:
        await kafka.publish(
            "shop.shipments", dispatched(order_id, shipment_id, at=now), key=order_id
        )
        await kafka.publish(
            "shop.shipments",
            scanned(order_id, shipment_id, "in_transit", at=now),
            key=order_id,
        )
    lost = [(f"O-L{n}", f"S-L{n}") for n in range(3)]
    for order_id, shipment_id in lost:
        await kafka.publish(
            "shop.shipments", scanned(order_id, shipment_id, "lost", at=now), key=order_id
        )
    # No graceful shutdown: whatever this replica held uncommitted is redelivered.
    replicas[0].crash()

    expected = (
        {f"shipment_delay:{s}:1:notice" for _, s in parcels}
        | {f"shipment_exception:{s}:1:notice" for _, s in lost}
        | {f"ops_escalation:{s}:1:lost" for _, s in lost}
    )
    commands = await _commands(kafka, len(expected))
    keys = {c["idempotency_key"] for c in commands}
    assert keys == expected
    assert all(c.get("customer_id") is None for c in commands)

    # Restarted, the pair shares the work again; the parcels move and each episode closes.
    await replicas[0].start()
    moved = datetime.now(UTC)
    for order_id, shipment_id in parcels:
        await kafka.publish(
            "shop.shipments",
            scanned(order_id, shipment_id, "in_transit", at=moved, location="上海"),
            key=order_id,
        )

    closing = {f"shipment_update:{s}:1:closing" for _, s in parcels}

    async def published() -> set[str]:
        records = await kafka.read_all(
            "followup.notifications", expected=len(expected | closing), timeout_s=2
        )
        return {json.loads(r.value)["data"]["idempotency_key"] for r in records}

    keys = await eventually(
        published, lambda k: closing <= k, timeout_s=60, what="closing messages"
    )
    assert keys == expected | closing

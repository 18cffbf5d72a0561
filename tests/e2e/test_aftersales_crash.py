"""The after-sales service as an operator runs it (`followup run aftersales`), fed by a plain
Kafka producer: killed in the middle of a burst, its consumer group rewound so every event
comes again, restarted. Each case's messages are decided once, and a promise that fell due
while it was down is still escalated, once."""

import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from followup.kafka import consumer_group
from tests.e2e.conftest import E2E_POLICY, ServiceProcess
from tests.e2e.test_first_message import _metric, _rewind
from tests.harness import Kafka, eventually
from tests.integration.aftersales.shop import aftersale

pytestmark = pytest.mark.e2e

# The first answer is due four seconds after a request: long enough to crash and restart
# around it. Everything else is out of the test's reach.
AFTERSALES_POLICY = """
[aftersales]
first_answer_within = "4s"
refund_within = "1h"
progress_every = "1h"
stale_after = "1h"
"""

CASES = 20


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "followup.toml"
    path.write_text(E2E_POLICY + AFTERSALES_POLICY)
    return path


async def test_a_crash_in_the_middle_loses_and_repeats_nothing(
    kafka: Kafka, database: str, stack_env: dict[str, str]
) -> None:
    service = ServiceProcess("aftersales", stack_env)
    await service.start()
    now = datetime.now(UTC)
    # One step per case, so however the burst is batched each case has one thing to say:
    # the even ones were approved (kind unknown, no promise), the odd ones only requested
    # and never answered, so their first-answer promise breaks four seconds later.
    for n in range(CASES):
        case_id, order_id = f"R-E{n:02d}", f"O-E{n:02d}"
        stage = "approved" if n % 2 == 0 else "requested"
        await kafka.publish(
            "shop.aftersales", aftersale(stage, case_id, order_id, now), key=order_id
        )
    db = await asyncpg.connect(database)
    try:
        group = consumer_group("aftersales", kafka.prefix + "shop.aftersales")
        # Stored is not yet committed: crash once an offset is, so the rewind below has
        # something to undo (a crash before that rereads everything anyway).
        await eventually(
            lambda: kafka.committed(group, "shop.aftersales"),
            lambda n: n >= CASES // 2,
            what="part of the burst processed and its offsets committed",
        )
        service.crash()
        seen_before_crash = await db.fetchval("SELECT count(*) FROM aftersales.inbox")
        await _rewind(kafka, group, "shop.aftersales")
        await service.start()
        await eventually(
            lambda: _metric(
                service, 'followup_events_total{outcome="duplicate",topic="shop.aftersales"}'
            ),
            lambda n: n >= seen_before_crash,
            what="the rewound events recognised as seen",
        )
        expected = CASES + CASES // 2  # one stage message each, plus the odd ones' escalation
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) FROM aftersales.case_messages WHERE decision = 'sent'"
            ),
            lambda n: n == expected,
            timeout_s=30,
            what="every decision",
        )
        await eventually(
            lambda: db.fetchval("SELECT count(*) FROM aftersales.outbox"),
            lambda n: n == 0,
            what="the outbox drained",
        )
    finally:
        await db.close()
        await service.stop()

    # A crash between publishing and deleting an outbox row publishes it again, with the same
    # event id and key (the notifier's inbox drops it): what counts is the set of decisions.
    records = [
        json.loads(r.value or b"{}")
        for r in await kafka.read_all("followup.notifications", expected=expected)
    ]
    keys = {
        r["data"]["idempotency_key"] for r in records if r["type"] == "followup.notification.send"
    }
    wanted: set[str] = set()
    for n in range(CASES):
        case_id = f"R-E{n:02d}"
        if n % 2 == 0:
            wanted.add(f"aftersale_progress:{case_id}:approved")
        else:
            wanted.add(f"aftersale_progress:{case_id}:requested")
            wanted.add(f"ops_escalation:aftersales:{case_id}:escalation.first_answer")
    assert keys == wanted

"""Delivery processes (``delivery_processes``): the notifier's own process consumes and
publishes, separate processes deliver from the same queue. Real processes, broker, database and
gateway; the system clock, as delivery processes keep it."""

import multiprocessing
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from faststream.asgi import AsgiFastStream

from contracts.codec import encode, envelope
from contracts.notifications import (
    MessageClass,
    NotificationKind,
    Priority,
    SendNotification,
    SendNotificationCommand,
)
from followup.clock import ManualClock
from followup.settings import ConfigError
from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from tests.harness import Kafka, eventually, running, scrape, service_settings
from tests.integration.notifier.conftest import SECRET, Providers, write_test_templates

pytestmark = pytest.mark.integration

CALLS = 'followup_provider_calls_total{channel="webhook",provider="gateway",result="delivered"}'
RESTARTS = 'followup_background_loop_restarts_total{loop="delivery_process"}'


def delivery_processes() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("notifier-delivery")]


async def delivery_pids() -> set[int | None]:
    return {p.pid for p in delivery_processes()}


@dataclass
class Running:
    app: AsgiFastStream
    kafka: Kafka
    db: asyncpg.Connection
    providers: Providers

    async def send(self, *numbers: int) -> None:
        for n in numbers:
            command = SendNotification(
                idempotency_key=f"update:O-{n}",
                kind=NotificationKind.SHIPMENT_UPDATE,
                customer_id=f"C-{n}",
                order_id=f"O-{n}",
                message_class=MessageClass.TRANSACTIONAL,
                priority=Priority.NORMAL,
                variables={"order_id": f"O-{n}", "note": "已发货"},
            )
            event = envelope(
                SendNotificationCommand, command, source="test", time=datetime.now(UTC)
            )
            await self.kafka.publish("followup.notifications", encode(event), key=f"C-{n}")

    async def deliver(self, numbers: range) -> None:
        """Send these and wait until they and every earlier one went out, each once."""
        await self.send(*numbers)
        total = numbers.stop
        await eventually(self.sent, lambda sent: sent == total, what=f"{total} sent")
        assert self.gateway_keys() == sorted(f"update:O-{i}" for i in range(total))

    async def sent(self) -> int:
        count: int = await self.db.fetchval(
            "SELECT count(*) FROM notifier.deliveries WHERE status = 'sent'"
        )
        return count

    def gateway_keys(self) -> list[str]:
        return sorted(m.headers["idempotency-key"] for m in self.providers.gateway.accepted)

    async def counted(self, series: str, expected: float) -> None:
        """Snapshots arrive every second: wait for the figure to catch up."""
        await eventually(lambda: scrape(self.app, series), lambda v: v == expected, what=series)


NotifierRunner = Callable[[], AbstractAsyncContextManager[Running]]


@pytest.fixture
def notifier_settings(
    kafka: Kafka, database: str, providers: Providers, tmp_path: Path
) -> NotifierSettings:
    policy = tmp_path / "followup.toml"
    policy.write_text("[notifier]\ndelivery_processes = 2\nclaim_batch = 5\n", encoding="utf-8")
    templates = tmp_path / "shop-templates"
    write_test_templates(templates)
    return service_settings(
        NotifierSettings,
        kafka,
        database,
        followup_policy_file=policy,
        notifier_templates_dir=templates,
        notifier_webhook_url=providers.gateway_url,
        notifier_webhook_secret=SECRET,
    )


@pytest.fixture
def with_notifier(
    notifier_settings: NotifierSettings, kafka: Kafka, database: str, providers: Providers
) -> NotifierRunner:
    @asynccontextmanager
    async def start() -> AsyncIterator[Running]:
        app = create_app(notifier_settings)
        db = await asyncpg.connect(database)
        try:
            async with running(app):
                await eventually(delivery_pids, lambda pids: len(pids) == 2, what="2 processes")
                yield Running(app, kafka, db, providers)
        finally:
            await db.close()

    return start


async def test_delivery_processes_send_every_message_once_and_metrics_count_them_all(
    with_notifier: NotifierRunner,
) -> None:
    async with with_notifier() as n:
        await n.deliver(range(40))
        # The service's own process delivers nothing itself: every call counted here was
        # made in a delivery process and reached /metrics through its snapshots.
        await n.counted(CALLS, 40)
        listening = await n.db.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'notifier-delivery-listen'"
        )
        assert listening == 2


async def test_a_killed_delivery_process_is_replaced_and_what_it_counted_stays_counted(
    with_notifier: NotifierRunner,
) -> None:
    async with with_notifier() as n:
        await n.deliver(range(20))
        await n.counted(CALLS, 20)

        killed = {p.pid for p in delivery_processes()}
        for pid in killed:
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        await eventually(
            delivery_pids,
            lambda pids: len(pids) == 2 and not pids & killed,
            what="two new delivery processes",
        )
        await n.counted(RESTARTS, 2)
        await n.counted(CALLS, 20)  # the killed processes' totals are not lost

        await n.deliver(range(20, 30))
        await n.counted(CALLS, 30)


async def test_stopping_the_notifier_stops_its_delivery_processes_cleanly(
    with_notifier: NotifierRunner,
) -> None:
    async with with_notifier() as n:
        processes = delivery_processes()
        await n.deliver(range(10))
    assert delivery_processes() == []
    assert [p.exitcode for p in processes] == [0, 0]


def test_delivery_processes_refuse_an_injected_clock(notifier_settings: NotifierSettings) -> None:
    with pytest.raises(ConfigError, match=r"notifier\.delivery_processes"):
        create_app(notifier_settings, clock=ManualClock(datetime.now(UTC)))

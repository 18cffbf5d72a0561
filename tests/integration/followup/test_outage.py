"""A database outage while events arrive: nothing is committed past unprocessed work, nothing
is dead-lettered, and everything is processed once the database is back."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import pytest

from followup.clock import ManualClock
from followup.kafka import consumer_group
from services.reminder.app import create_app as reminder_app
from services.reminder.settings import ReminderSettings
from tests.harness import Kafka, eventually, order_created, running, scrape, service_settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


@pytest.fixture
async def admin(postgres_server: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_server)
    yield conn
    await conn.close()


async def take_down(admin: asyncpg.Connection, database: str) -> None:
    name = urlsplit(database).path.lstrip("/")
    await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
    )


async def bring_back(admin: asyncpg.Connection, database: str) -> None:
    name = urlsplit(database).path.lstrip("/")
    await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")


async def test_outage_holds_commits_and_loses_nothing(
    kafka: Kafka, database: str, admin: asyncpg.Connection
) -> None:
    clock = ManualClock(T0)
    app = reminder_app(service_settings(ReminderSettings, kafka, database), clock=clock)
    deadline = T0 + timedelta(hours=24)
    async with running(app):
        await kafka.publish(
            "shop.orders", order_created("O-1", at=T0, deadline=deadline), key="O-1"
        )
        probe = await asyncpg.connect(database)
        try:
            await eventually(
                lambda: probe.fetchval("SELECT count(*) FROM reminder.orders"),
                lambda n: n == 1,
                what="first order",
            )
        finally:
            await probe.close()
        before = await eventually(
            lambda: kafka.committed(
                consumer_group("reminder", kafka.prefix + "shop.orders"), "shop.orders"
            ),
            lambda n: n == 1,
            what="first commit",
        )

        await take_down(admin, database)
        try:
            for n in range(2, 12):
                await kafka.publish(
                    "shop.orders", order_created(f"O-{n}", at=T0, deadline=deadline), key=f"O-{n}"
                )
            # Let the consumer fetch and fail on these records a few times.
            await eventually(
                lambda: scrape(app, 'followup_transient_errors_total{component="consumer"}'),
                lambda n: n >= 3,
                what="retries during the outage",
            )
            assert (
                await kafka.committed(
                    consumer_group("reminder", kafka.prefix + "shop.orders"), "shop.orders"
                )
                == before
            )
        finally:
            await bring_back(admin, database)

        probe = await asyncpg.connect(database)
        try:
            await eventually(
                lambda: probe.fetchval("SELECT count(*) FROM reminder.orders"),
                lambda n: n == 11,
                what="all orders",
                timeout_s=60,
            )
            # One pending timer per order: each tier schedules the next when it fires.
            assert await probe.fetchval("SELECT count(*) FROM reminder.timers") == 11
            # The outage closed the LISTEN connection too; it is opened again.
            await eventually(
                lambda: probe.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = 'reminder-listen'"
                ),
                lambda n: n == 1,
                what="LISTEN again",
            )
        finally:
            await probe.close()
        await eventually(
            lambda: kafka.committed(
                consumer_group("reminder", kafka.prefix + "shop.orders"), "shop.orders"
            ),
            lambda n: n == 11,
            what="commits resumed",
        )
    assert await kafka.read_all("shop.orders.dlq", expected=1, timeout_s=1) == []

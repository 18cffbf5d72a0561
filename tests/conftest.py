"""Session-wide embedded broker and PostgreSQL (or the ones the environment names)."""

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.harness import Kafka, embedded_kafka, embedded_postgres, fresh_database, kafka_for_test


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with embedded_kafka() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with embedded_postgres() as dsn:
        yield dsn


@pytest.fixture
async def database(postgres_server: str) -> AsyncIterator[str]:
    async with fresh_database(postgres_server) as dsn:
        yield dsn


@pytest.fixture
async def kafka(kafka_bootstrap: str) -> AsyncIterator[Kafka]:
    async with kafka_for_test(kafka_bootstrap) as k:
        yield k

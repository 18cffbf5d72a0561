"""A pool on a fresh database with the runtime's own tables (inbox, timers, outbox)."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from followup.db import RUNTIME_MIGRATIONS, create_pool, migrate, migrations_in


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, "runtime_test", size=8, connect_timeout_s=10)
    async with pool.acquire() as conn:
        await migrate(conn, "runtime_test", migrations_in(RUNTIME_MIGRATIONS, "runtime"))
    yield pool
    await pool.close()

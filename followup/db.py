"""PostgreSQL: one pool per service bound to the service's own schema, and its migrations."""

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import orjson

log = logging.getLogger(__name__)

# A connection of our own or one borrowed from a pool; SQL helpers accept either. A string,
# because asyncpg's classes are generic only in its type stubs.
Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Failures that say nothing about the data being processed, so waiting and trying again is
# right: connection (08), resources (53), operator intervention such as shutdown (57),
# system (58), serialization and deadlock (40), and object state (55: "database is not
# currently accepting connections", lock not available, object in use). A read-only
# transaction (25006) is what a failover to a standby looks like until the DSN moves.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58", "40", "55")
_TRANSIENT_SQLSTATES = ("25006",)


def is_transient(exc: BaseException) -> bool:
    """True for infrastructure failures (database or broker unreachable, deadlock, shutdown)."""
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES
    from aiokafka.errors import KafkaError

    return isinstance(
        exc,
        OSError
        | ConnectionError
        | TimeoutError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.ConnectionDoesNotExistError
        | KafkaError,
    )


def validate_schema_name(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lower-case letters, digits, '_'")
    return schema


async def _init_connection(conn: Connection) -> None:
    # orjson, not the standard library: every timer claimed and every outbox row written or
    # relayed passes a jsonb value through here (payloads, headers).
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_text, decoder=orjson.loads, schema="pg_catalog"
    )


def _jsonb_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def create_pool(
    dsn: str, schema: str, *, size: int, connect_timeout_s: float
) -> asyncpg.Pool:
    """A pool whose connections see ``schema`` first; retried while PostgreSQL is starting."""
    validate_schema_name(schema)
    deadline = time.monotonic() + connect_timeout_s
    delay = 0.2
    while True:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=size,
                init=_init_connection,
                server_settings={
                    "search_path": f"{schema},public",
                    "application_name": schema,
                    # asyncpg prepares and caches statements; after five runs PostgreSQL may
                    # switch to a generic plan, which for the timer claim (due_at <= $1) is a
                    # sequential scan. Every statement here handles a batch, so planning each
                    # run with its values costs little and keeps the index plans.
                    "plan_cache_mode": "force_custom_plan",
                },
            )
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("database not reachable yet, retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            return pool


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


def migrations_in(directory: Path, prefix: str) -> list[Migration]:
    """``NNNN_name.sql`` files in order; the prefix keeps runtime and service versions apart."""
    return [
        Migration(version=f"{prefix}/{path.name}", sql=path.read_text())
        for path in sorted(directory.glob("*.sql"))
    ]


async def migrate(conn: Connection, schema: str, migrations: Sequence[Migration]) -> list[str]:
    """Apply the migrations not yet recorded in ``schema``; safe from many replicas at once."""
    validate_schema_name(schema)
    applied: list[str] = []
    async with conn.transaction():
        # Replicas starting together queue here instead of racing on CREATE TABLE.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"followup-migrate:{schema}"
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"SET LOCAL search_path TO {schema}, public")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)", migration.version
            )
            applied.append(migration.version)
    return applied


async def migrate_dsn(dsn: str, schema: str, migrations: Sequence[Migration]) -> list[str]:
    conn: Connection = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema, migrations)
    finally:
        await conn.close()


def service_migrations(schema: str, service_dir: Path) -> list[Migration]:
    """The runtime's tables (inbox, outbox, timers) followed by the service's own."""
    return migrations_in(RUNTIME_MIGRATIONS, "runtime") + migrations_in(
        service_dir / "migrations", schema
    )


def json_arg(value: Any) -> str:
    """asyncpg's jsonb codec is per connection; unnest() over jsonb[] needs text in."""
    return json.dumps(value, ensure_ascii=False, default=str)


def batch_rows(rows: Iterable[Sequence[Any]] | Iterable[Mapping[str, Any]]) -> str:
    """A whole batch as one JSON array of rows, read in SQL with
    ``FROM jsonb_array_elements($1::text::jsonb) AS r`` and ``r->>0``, ``(r->>1)::timestamptz``,
    ``r->2`` for a nested JSON value (write ``nullif(r->2, 'null')`` where it may be None,
    since ``->`` keeps a JSON null) and so on. A row may also be an object keyed by column
    name, for ``jsonb_populate_recordset(NULL::<table>, $1::text::jsonb)``, which types each
    value by the table's columns. The parameter is text so that the pool's jsonb codec does not
    encode it twice. Long values (JSON documents of their own) are cheaper beside the batch, as
    a ``text[]`` zipped to the rows with ``ROWS FROM (jsonb_array_elements(...), unnest(...))``:
    inside it PostgreSQL would parse them into jsonb only to print them back.

    One parameter serialised by orjson instead of one typed array per column: asyncpg encodes
    array parameters element by element, with several ABC isinstance checks each, which at a
    thousand events per batch cost more than deciding what to do with them (bench/: 12 us
    against 4 us per 12-column order row, and less time in PostgreSQL too, read as jsonb).
    """
    return orjson.dumps(list(rows), default=_json_scalar).decode()


def _json_scalar(value: Any) -> str:
    # orjson writes uuid.UUID itself, but not asyncpg's subclass that rows read back hold.
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be sent in a batch: {value!r}")

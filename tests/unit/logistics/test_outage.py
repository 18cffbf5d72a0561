"""A database closed to connections is an outage to wait out, never a reason to dead-letter."""

import asyncpg

from followup.db import is_transient


def test_a_database_refusing_connections_is_transient() -> None:
    refused = asyncpg.exceptions.ObjectNotInPrerequisiteStateError(
        'database "shop" is not currently accepting connections'
    )
    assert refused.sqlstate == "55000"
    assert is_transient(refused)
    assert not is_transient(asyncpg.exceptions.NotNullViolationError("bad row"))

"""LISTEN for the notifications that tables' triggers send at commit, so loops start work at
once instead of at their next poll."""

import asyncio
import logging
from collections.abc import Callable, Mapping

import asyncpg

from followup.loops import wait_for_any

log = logging.getLogger(__name__)

_CHECK_S = 5.0


def table_channel(schema: str, table: str) -> str:
    """The channel ``notify_table_changed`` notifies when a transaction writing the table
    commits."""
    return f"{schema}_{table}"


def _callback(wake: Callable[[], None]) -> Callable[..., None]:
    def on_notification(*_: object) -> None:
        wake()

    return on_notification


class Listener:
    """One connection listening on the channels of ``wakeups`` (see ``table_channel``).
    Not having it is not fatal: every loop also polls, and lateness grows to the poll
    interval meanwhile."""

    def __init__(self, dsn: str, name: str, wakeups: Mapping[str, Callable[[], None]]) -> None:
        self._dsn = dsn
        self._name = name
        # Read at open(): channels may be added until then.
        self._wakeups = wakeups
        self._connection: asyncpg.Connection | None = None

    async def open(self) -> bool:
        try:
            connection = await asyncpg.connect(
                self._dsn, server_settings={"application_name": self._name}
            )
            for channel, wake in self._wakeups.items():
                await connection.add_listener(channel, _callback(wake))
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN unavailable, relying on polling: %s", exc)
            return False
        self._connection = connection
        return True

    async def keep_listening(self, stop: asyncio.Event) -> None:
        """Reopen the connection after a database outage or restart took it away."""
        while not stop.is_set():
            if (self._connection is None or self._connection.is_closed()) and await self.open():
                log.info("listening for database notifications again")
                for wake in self._wakeups.values():
                    wake()  # whatever was committed while nobody listened
            await wait_for_any(stop, _CHECK_S)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

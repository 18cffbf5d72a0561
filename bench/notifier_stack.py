"""What the notifier benchmarks share: a fast webhook receiver in its own process (so it does
not compete with the notifier's event loop), the notifier running in this process on the
wall clock, and commands as the other services write them."""

import argparse
import asyncio
import multiprocessing
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

from bench.environment import BenchStack
from contracts.codec import encode, envelope
from contracts.notifications import (
    MessageClass,
    NotificationKind,
    Priority,
    SendNotification,
    SendNotificationCommand,
)
from followup.stack.embedded import free_port
from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings

SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a local benchmark gateway
_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class _GatewayProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, 200 to each request. Just enough HTTP for the notifier's client
    and much faster than a general server, so that the notifier is what gets measured."""

    def __init__(self, count: Any) -> None:
        self._count = count
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.Transport):
            self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        answered = 0
        while (head_end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:head_end].lower()
            start = head.find(b"content-length:")
            length = 0
            if start >= 0:
                line_end = head.find(b"\r\n", start)
                length = int(head[start + 15 : line_end if line_end > 0 else None])
            end = head_end + 4 + length
            if len(self._buffer) < end:
                break
            self._buffer = self._buffer[end:]
            answered += 1
        if answered and self._transport is not None:
            self._transport.write(_OK * answered)
            with self._count.get_lock():
                self._count.value += answered


def _serve(port: int, count: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _GatewayProtocol(count), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@dataclass
class Gateway:
    url: str
    _count: Any

    @property
    def received(self) -> int:
        value: int = self._count.value
        return value


@contextmanager
def gateway() -> Iterator[Gateway]:
    port = free_port()
    # Spawned, not forked: a fork would copy this process's running event loop and broker.
    context = multiprocessing.get_context("spawn")
    count = context.Value("q", 0)
    process = context.Process(target=_serve, args=(port, count), daemon=True)
    process.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield Gateway(f"http://127.0.0.1:{port}/messages", count)
    finally:
        process.terminate()
        process.join()


def command(n: int, now: datetime, not_before: datetime | None = None) -> bytes:
    """A reminder-style message to its own customer (so no contact budget interferes)."""
    data = SendNotification(
        idempotency_key=f"bench:{n}",
        kind=NotificationKind.UNPAID_REMINDER,
        customer_id=f"C-{n}",
        order_id=f"O-{n}",
        locale="zh-CN",
        timezone="Asia/Shanghai",
        variables={
            "customer_name": "王女士",
            "order_id": f"O-{n}",
            "items": [{"title": "羊毛混纺大衣", "quantity": 1, "options": {}}],
            "total": "599.00",
            "currency": "CNY",
            "pay_deadline": (now + timedelta(hours=24)).isoformat(),
        },
        meta={"tier": 1},
        # Transactional and normal priority: quiet hours would hold marketing messages back
        # whenever the benchmark runs at night in Shanghai.
        priority=Priority.NORMAL,
        message_class=MessageClass.TRANSACTIONAL,
        source_event_time=now,
        not_before=not_before,
    )
    return encode(envelope(SendNotificationCommand, data, source="bench", time=now))


def add_delivery_processes_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delivery-processes",
        type=int,
        default=2,
        help="the notifier's delivery_processes (0: it delivers in its own process)",
    )


def instance(delivery_processes: int) -> str:
    """The notifier as the figures' conditions name it."""
    if not delivery_processes:
        return "one notifier process"
    return (
        f"one notifier instance: its process consuming and publishing, {delivery_processes} "
        "delivery processes"
    )


@asynccontextmanager
async def running_notifier(
    stack: BenchStack, url: str, tmp: Path, *, delivery_processes: int = 0
) -> AsyncIterator[None]:
    policy = tmp / "followup.toml"
    policy.write_text(
        "[notifier]\nconcurrency = 1000\nclaim_batch = 500\n"
        f"delivery_processes = {delivery_processes}\n",
        encoding="utf-8",
    )
    settings = stack.settings(
        NotifierSettings,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        database_pool_size=8,
        followup_policy_file=policy,
        notifier_webhook_url=url,
        notifier_webhook_secret=SecretStr(SECRET),
    )
    app = create_app(settings)
    await app.start()
    try:
        yield
    finally:
        await app.stop()


async def count_where(conn: asyncpg.Connection, condition: str) -> int:
    count: int = await conn.fetchval(f"SELECT count(*) FROM notifier.deliveries WHERE {condition}")
    return count


async def attempt_outcomes(conn: asyncpg.Connection) -> dict[str, int]:
    """Provider calls by outcome: a benchmark with retries in it measures the wrong thing."""
    rows = await conn.fetch(
        "SELECT outcome || ': ' || left(detail, 60) AS what, count(*) AS n "
        "FROM notifier.delivery_attempts GROUP BY 1 ORDER BY 2 DESC"
    )
    return {r["what"]: r["n"] for r in rows}


async def wait_until(
    probe: Callable[[], Awaitable[bool]], *, every_s: float, timeout_s: float = 600
) -> float:
    """Poll ``probe`` until it holds; returns when it did (perf_counter), for the figures."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if await probe():
            return time.perf_counter()
        await asyncio.sleep(every_s)
    raise TimeoutError(f"benchmark condition not reached within {timeout_s:.0f}s")


def now() -> datetime:
    return datetime.now(UTC)


def elapsed_since(started: float) -> float:
    return time.perf_counter() - started

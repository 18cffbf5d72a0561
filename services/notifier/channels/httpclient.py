"""Provider calls: HTTP/1.1 POSTs over kept-alive connections, parsed by llhttp (httptools).

Why not a general client: a provider call is one POST with a small body and a small answer,
and at the delivery rates the notifier aims for the client's own bookkeeping is what costs.
On this machine, 6,000 calls to the benchmark gateway under uvloop cost 207–257 µs of CPU
each with aiohttp (httpx more) and 78–107 µs with this client, which parses answers with the
same C parser uvicorn uses; a bare socket exchange costs about 30. It does what the
providers need and no more: ``http`` and ``https`` (certificates verified), keep-alive with a
few connections per host, Content-Length, chunked and close-delimited answers, one overall
timeout per call. No redirects (a provider that redirects a POST is misconfigured, and the
answer says so), no proxies, no cookies.
"""

import asyncio
import functools
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import httptools

from services.notifier.channels import HttpAnswer, Outcome, SendResult

_MAX_BODY_BYTES = 1 << 20
_USER_AGENT = "order-followup-notifier"


class _ClosedEarly(ConnectionError):
    """The server closed the connection before a whole answer arrived."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request at a time on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.received_any = False
        self._answer: asyncio.Future[HttpAnswer] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the end is known without a close

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def request(self, head: bytes, body: bytes) -> "asyncio.Future[HttpAnswer]":
        self._answer = asyncio.get_running_loop().create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._body, self._size, self._headers_done, self._framed = [], 0, False, False
        self.received_any = False
        if self.transport is None:
            raise _ClosedEarly("connection closed before the request")
        self.transport.write(head + body)
        return self._answer

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if self._answer is None or self._answer.done():
            # Nothing asked for this (a late or extra answer): the connection is not reusable.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._answer is None or self._answer.done():
            return
        if self._headers_done and not self._framed and exc is None:
            self.on_message_complete()  # an answer delimited by closing the connection
            return
        self._fail(_ClosedEarly(f"connection closed before the answer: {exc or 'EOF'}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:  # noqa: ARG002 - parser API
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > _MAX_BODY_BYTES:
            self._fail(ConnectionError(f"answer larger than {_MAX_BODY_BYTES} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._answer is not None and not self._answer.done():
            if not self._parser.should_keep_alive():
                self.close()
            self._answer.set_result(
                HttpAnswer(self._parser.get_status_code(), b"".join(self._body))
            )

    def _fail(self, exc: Exception) -> None:
        self.close()
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)


@dataclass
class _Host:
    """The idle connections to one origin and how many are open."""

    idle: deque[_Connection] = field(default_factory=deque)
    open: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    closed: bool = False


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


# Most providers are called at the same URL over and over, and parsing it costs about as much
# as writing the request; signed URLs (DingTalk, Feishu) differ per call, hence the bound.
@functools.lru_cache(maxsize=64)
def _target(url: str) -> _Target:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(parts.scheme, parts.hostname, port, path)


class HttpClient:
    def __init__(
        self,
        *,
        timeout_s: float,
        connections_per_host: int = 16,
        idle_timeout_s: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._per_host = connections_per_host
        # Below the 5 s keep-alive of common servers (uvicorn, nginx's default is 75 s), so
        # a connection the server is about to close is rarely picked.
        self._idle_timeout_s = idle_timeout_s
        self._ssl = ssl_context or ssl.create_default_context()
        self._hosts: dict[tuple[str, str, int], _Host] = {}

    async def post(
        self,
        url: str,
        *,
        data: bytes | Mapping[str, str],
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer | SendResult:
        """One POST; no answer at all (refused, reset, timed out) is always worth another try.
        A form (a mapping) is sent URL-encoded."""
        target = _target(url)
        all_headers = dict(headers or {})
        if isinstance(data, Mapping):
            data = urllib.parse.urlencode(data).encode()
            if not any(name.lower() == "content-type" for name in all_headers):
                all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        head = self._head(target, all_headers, len(data))
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._exchange(target, head, data)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            return SendResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        """Close the idle connections and forget the pools; calls still in flight finish on
        their own connections, which are closed when they do."""
        hosts, self._hosts = self._hosts, {}
        for host in hosts.values():
            host.closed = True
            while host.idle:
                host.idle.popleft().close()

    def _head(self, target: _Target, headers: Mapping[str, str], length: int) -> bytes:
        default_port = 443 if target.scheme == "https" else 80
        host = f"[{target.host}]" if ":" in target.host else target.host  # an IPv6 literal
        authority = host if target.port == default_port else f"{host}:{target.port}"
        lines = [
            f"POST {target.path} HTTP/1.1",
            f"Host: {authority}",
            f"User-Agent: {_USER_AGENT}",
            f"Content-Length: {length}",
        ]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} contains a line break")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _exchange(self, target: _Target, head: bytes, body: bytes) -> HttpAnswer:
        host = self._hosts.setdefault(target.origin, _Host())
        connection, reused = await self._acquire(host, target)
        try:
            answer = await connection.request(head, body)
        except _ClosedEarly:
            self._discard(host, connection)
            if not reused or connection.received_any:
                raise
            # The server closed a kept-alive connection as we used it (its idle timeout and
            # our request crossed). Sent again at once, as the delivery retry would do later
            # anyway: a server that read it and died without a word looks the same, and
            # idempotency keys (gateway) or the provider's own checks cover that case.
            connection = await self._open(host, target)
            try:
                answer = await connection.request(head, body)
            except BaseException:
                self._discard(host, connection)
                raise
        except BaseException:
            self._discard(host, connection)
            raise
        self._release(host, connection)
        return answer

    async def _acquire(self, host: _Host, target: _Target) -> tuple[_Connection, bool]:
        while True:
            now = time.monotonic()
            while host.idle:
                connection = host.idle.pop()  # the most recently used: least likely stale
                if connection.usable and now - connection.idle_since < self._idle_timeout_s:
                    return connection, True
                self._discard(host, connection)
            if host.open < self._per_host:
                return await self._open(host, target), False
            waiter = asyncio.get_running_loop().create_future()
            host.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in host.waiters:
                    host.waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one(host)  # woken as the call timed out: pass the turn on
                raise

    async def _open(self, host: _Host, target: _Target) -> _Connection:
        host.open += 1
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection,
                target.host,
                target.port,
                ssl=self._ssl if target.scheme == "https" else None,
            )
        except BaseException:
            host.open -= 1
            self._wake_one(host)
            raise
        return connection

    def _release(self, host: _Host, connection: _Connection) -> None:
        if not connection.usable or host.closed:
            self._discard(host, connection)
            return
        connection.idle_since = time.monotonic()
        host.idle.append(connection)
        self._wake_one(host)

    def _discard(self, host: _Host, connection: _Connection) -> None:
        connection.close()
        host.open -= 1
        self._wake_one(host)

    def _wake_one(self, host: _Host) -> None:
        while host.waiters:
            waiter = host.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

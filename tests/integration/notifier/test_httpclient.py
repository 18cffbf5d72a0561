"""The provider HTTP client against raw servers on loopback. Each server writes its answers
byte for byte, so the framing, keep-alive and failure cases are exactly the ones named."""

import asyncio
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme

from followup.stack.embedded import free_port
from services.notifier.channels import HttpAnswer, Outcome, SendResult
from services.notifier.channels.httpclient import HttpClient

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Request:
    line: str
    headers: list[tuple[str, str]]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection, or None once the client has closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *fields = head.decode().removesuffix("\r\n\r\n").split("\r\n")
    headers = [(name, value.strip()) for name, _, value in (f.partition(":") for f in fields)]
    length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
    return Request(line, headers, await reader.readexactly(length))


@dataclass
class Peer:
    """The server's end of one connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[Request]

    async def request(self) -> Request | None:
        request = await read_request(self.reader)
        if request is not None:
            self.requests.append(request)
        return request

    async def answer(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()


Handler = Callable[[Peer], Awaitable[None]]


def keep_alive(raw: bytes) -> Handler:
    """Answers every request on a connection with ``raw`` until the client closes it."""

    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.answer(raw)

    return handle


def scripted(*raws: bytes) -> Handler:
    """Answers the requests on a connection with ``raws`` in turn, then closes it."""

    async def handle(peer: Peer) -> None:
        for raw in raws:
            if await peer.request() is None:
                return
            await peer.answer(raw)

    return handle


async def silent(peer: Peer) -> None:
    """Reads every request and answers none."""
    while await peer.request() is not None:
        pass


@dataclass
class Server:
    url: str = ""
    accepted: int = 0
    open: int = 0
    most_open: int = 0
    """The most connections open at the same time."""
    requests: list[Request] = field(default_factory=list)


@asynccontextmanager
async def serving(
    handler: Handler, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Server]:
    server = Server()
    connections: list[tuple[asyncio.Task[Any], asyncio.StreamWriter]] = []

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.append((task, writer))
        server.accepted += 1
        server.open += 1
        server.most_open = max(server.most_open, server.open)
        try:
            await handler(Peer(reader, writer, server.requests))
        finally:
            server.open -= 1
            writer.close()

    listener = await asyncio.start_server(connected, host, 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    authority = f"[{host}]" if ":" in host else host
    server.url = f"{'https' if tls else 'http'}://{authority}:{port}"
    try:
        yield server
    finally:
        listener.close()
        for _, writer in connections:
            writer.close()  # ends the handlers still reading
        # Awaiting the handlers makes an error in one fail the test.
        async with asyncio.timeout(5):
            await asyncio.gather(*(task for task, _ in connections))
        await listener.wait_closed()


@asynccontextmanager
async def closing(client: HttpClient) -> AsyncIterator[HttpClient]:
    try:
        yield client
    finally:
        await client.close()


def framed(status: str, body: bytes, *headers: str) -> bytes:
    """An answer whose end is given by its Content-Length."""
    head = "\r\n".join([f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers])
    return f"{head}\r\n\r\n".encode() + body


OK = framed("200 OK", b'{"sid":"SM1"}', "Content-Type: application/json")
OK_ANSWER = HttpAnswer(200, b'{"sid":"SM1"}')


def retry_reason(result: HttpAnswer | SendResult) -> str:
    assert isinstance(result, SendResult), result
    assert result.outcome == Outcome.RETRY
    return result.detail


@pytest.mark.parametrize(("status", "body"), [("202 Accepted", b"queued"), ("503 Busy", b"")])
async def test_the_status_and_body_of_an_answer_are_returned(status: str, body: bytes) -> None:
    async with (
        serving(keep_alive(framed(status, body))) as server,
        closing(HttpClient(timeout_s=5)) as client,
    ):
        answer = await client.post(server.url, data=b"{}")
    assert answer == HttpAnswer(int(status[:3]), body)


async def test_the_request_carries_its_line_host_length_and_headers() -> None:
    body = '{"text":"您的订单已发货"}'.encode()
    async with serving(keep_alive(OK)) as server, closing(HttpClient(timeout_s=5)) as client:
        await client.post(
            f"{server.url}/hooks/notify?tenant=shop",
            data=body,
            headers={"Authorization": "Bearer t0k", "Content-Type": "application/json"},
        )
    [request] = server.requests
    assert request.line == "POST /hooks/notify?tenant=shop HTTP/1.1"
    assert request.headers == [
        ("Host", urllib.parse.urlsplit(server.url).netloc),
        ("User-Agent", "order-followup-notifier"),
        ("Content-Length", str(len(body))),
        ("Authorization", "Bearer t0k"),
        ("Content-Type", "application/json"),
    ]
    assert request.body == body


async def test_an_ipv6_host_is_named_in_brackets() -> None:
    async with (
        serving(keep_alive(OK), host="::1") as server,
        closing(HttpClient(timeout_s=5)) as client,
    ):
        assert await client.post(server.url, data=b"1") == OK_ANSWER
    [request] = server.requests
    assert ("Host", urllib.parse.urlsplit(server.url).netloc) in request.headers
    assert urllib.parse.urlsplit(server.url).netloc.startswith("[::1]:")


async def test_a_form_is_sent_url_encoded() -> None:
    form = {"To": "+8613800138000", "From": "+15005550006", "Body": "已发货 & 感谢=100%"}
    async with serving(keep_alive(OK)) as server, closing(HttpClient(timeout_s=5)) as client:
        await client.post(server.url, data=form)
    [request] = server.requests
    assert ("Content-Type", "application/x-www-form-urlencoded") in request.headers
    assert dict(urllib.parse.parse_qsl(request.body.decode(), strict_parsing=True)) == form


async def test_a_form_keeps_the_content_type_the_caller_gave_in_any_case() -> None:
    async with serving(keep_alive(OK)) as server, closing(HttpClient(timeout_s=5)) as client:
        await client.post(
            server.url,
            data={"a": "1"},
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
    [request] = server.requests
    assert [v for n, v in request.headers if n.lower() == "content-type"] == [
        "application/x-www-form-urlencoded; charset=utf-8"
    ]


async def test_a_client_can_be_used_again_after_close() -> None:
    async with (
        serving(keep_alive(OK)) as server,
        closing(HttpClient(timeout_s=1, connections_per_host=1)) as client,
    ):
        assert await client.post(server.url, data=b"1") == OK_ANSWER
        await client.close()
        assert await client.post(server.url, data=b"2") == OK_ANSWER
    assert server.accepted == 2


async def test_a_kept_alive_connection_is_reused() -> None:
    async with serving(keep_alive(OK)) as server, closing(HttpClient(timeout_s=5)) as client:
        answers = [await client.post(server.url, data=body) for body in (b"1", b"2")]
    assert answers == [OK_ANSWER, OK_ANSWER]
    assert server.accepted == 1
    assert [r.body for r in server.requests] == [b"1", b"2"]


async def test_concurrent_calls_share_at_most_connections_per_host_connections() -> None:
    bodies = [str(i).encode() for i in range(20)]
    async with (
        serving(keep_alive(OK)) as server,
        closing(HttpClient(timeout_s=5, connections_per_host=2)) as client,
    ):
        answers = await asyncio.gather(*(client.post(server.url, data=b) for b in bodies))
    assert answers == [OK_ANSWER] * len(bodies)
    assert server.most_open == 2
    assert sorted(r.body for r in server.requests) == sorted(bodies)


async def test_an_answer_with_connection_close_is_not_reused() -> None:
    # The server leaves the connection open: the client must close it on its own.
    answer = framed("200 OK", b"ok", "Connection: close")
    async with serving(keep_alive(answer)) as server, closing(HttpClient(timeout_s=5)) as client:
        for body in (b"1", b"2"):
            assert await client.post(server.url, data=body) == HttpAnswer(200, b"ok")
    assert server.accepted == 2


async def test_a_connection_idle_longer_than_the_idle_timeout_is_not_reused() -> None:
    async with (
        serving(keep_alive(OK)) as server,
        closing(HttpClient(timeout_s=5, idle_timeout_s=0)) as client,
    ):
        for body in (b"1", b"2"):
            assert await client.post(server.url, data=body) == OK_ANSWER
    assert server.accepted == 2


async def test_a_kept_alive_connection_the_server_closed_is_replaced_without_sending_twice() -> (
    None
):
    # The server closes each connection right after its answer. The second call follows the
    # first without a pause, so it picks the connection before the client has read the close
    # and meets it as a request is sent: as when the server's idle timeout and a call cross.
    async with serving(scripted(OK)) as server, closing(HttpClient(timeout_s=5)) as client:
        answers = [await client.post(server.url, data=body) for body in (b"1", b"2")]
    assert answers == [OK_ANSWER, OK_ANSWER]
    assert [r.body for r in server.requests] == [b"1", b"2"]
    assert server.accepted == 2


async def test_a_new_connection_closed_before_the_answer_is_not_retried() -> None:
    # The server may have acted on the request: sending it again could do it twice.
    async with serving(scripted(b"")) as server, closing(HttpClient(timeout_s=5)) as client:
        result = await client.post(server.url, data=b"1")
    assert retry_reason(result).startswith("_ClosedEarly: connection closed before the answer")
    assert len(server.requests) == 1
    assert server.accepted == 1


async def test_a_reused_connection_closed_in_the_middle_of_an_answer_is_not_retried() -> None:
    async with serving(scripted(OK, OK[:20])) as server, closing(HttpClient(timeout_s=5)) as client:
        first = await client.post(server.url, data=b"1")
        second = await client.post(server.url, data=b"2")
    assert first == OK_ANSWER
    assert retry_reason(second).startswith("_ClosedEarly: connection closed before the answer")
    assert [r.body for r in server.requests] == [b"1", b"2"]
    assert server.accepted == 1


async def test_a_refused_connection_is_a_retry() -> None:
    async with closing(HttpClient(timeout_s=5)) as client:
        result = await client.post(f"http://127.0.0.1:{free_port()}/", data=b"1")
    assert retry_reason(result).startswith("ConnectionRefusedError: ")


async def test_a_server_that_never_answers_is_a_retry_once_the_timeout_is_over() -> None:
    async with serving(silent) as server, closing(HttpClient(timeout_s=0.2)) as client:
        async with asyncio.timeout(2):
            result = await client.post(server.url, data=b"1")
    assert retry_reason(result).startswith("TimeoutError")
    assert len(server.requests) == 1


async def test_an_answer_that_is_not_http_is_a_retry_with_the_reason() -> None:
    garbage = b"220 smtp.shop.example ESMTP ready\r\n"
    async with serving(keep_alive(garbage)) as server, closing(HttpClient(timeout_s=5)) as client:
        result = await client.post(server.url, data=b"1")
    assert retry_reason(result).startswith("ConnectionError: malformed HTTP answer: ")


async def test_a_chunked_answer_is_joined_and_its_connection_reused() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'7\r\n{"sid":\r\n6\r\n"SM1"}\r\n0\r\n\r\n'
    )
    async with serving(keep_alive(chunked)) as server, closing(HttpClient(timeout_s=5)) as client:
        answers = [await client.post(server.url, data=body) for body in (b"1", b"2")]
    assert answers == [OK_ANSWER, OK_ANSWER]
    assert server.accepted == 1


async def test_an_answer_without_a_length_ends_when_the_server_closes_the_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nqueued for delivery"
    async with serving(scripted(answer)) as server, closing(HttpClient(timeout_s=5)) as client:
        result = await client.post(server.url, data=b"1")
    assert result == HttpAnswer(200, b"queued for delivery")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_https_works_with_a_context_that_trusts_the_server_certificate(
    ca: trustme.CA, tls_server: ssl.SSLContext
) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with (
        serving(keep_alive(OK), tls=tls_server) as server,
        closing(HttpClient(timeout_s=5, ssl_context=trusting)) as client,
    ):
        answers = [await client.post(server.url, data=body) for body in (b"1", b"2")]
    assert answers == [OK_ANSWER, OK_ANSWER]
    assert server.accepted == 1


async def test_https_to_a_certificate_the_default_context_does_not_trust_is_a_retry(
    tls_server: ssl.SSLContext,
) -> None:
    async with (
        serving(keep_alive(OK), tls=tls_server) as server,
        closing(HttpClient(timeout_s=5)) as client,
    ):
        result = await client.post(server.url, data=b"1")
    assert retry_reason(result).startswith("SSLCertVerificationError: ")
    assert server.requests == []

"""A stand-in for the shop's messaging gateway: receives webhook messages over real HTTP,
checks the signature, and prints each message the way a customer would read it."""

import asyncio
import hashlib
import hmac
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class ReceivedMessage:
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class WebhookReceiver:
    """ASGI app. ``answers`` is a queue of status codes to reply with before answering 200,
    to exercise retries."""

    def __init__(
        self,
        secret: str | None,
        *,
        answers: list[int] | None = None,
        on_message: Callable[[ReceivedMessage], None] | None = None,
    ) -> None:
        self._secret = secret.encode() if secret else None
        self._answers = deque(answers or [])
        self._on_message = on_message
        self.received: list[ReceivedMessage] = []
        self.accepted: list[ReceivedMessage] = []
        self.arrived = asyncio.Event()

    def _valid(self, headers: dict[str, str], body: bytes) -> bool:
        if self._secret is None:
            return False
        expected = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers.get("x-signature", ""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        message = ReceivedMessage(headers, body, self._valid(headers, body))
        self.received.append(message)
        status = self._answers.popleft() if self._answers else 200
        if status == 200 and message.signature_valid:
            self.accepted.append(message)
            if self._on_message is not None:
                self._on_message(message)
        elif status == 200:
            status = 401
        self.arrived.set()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class ReceiverServer:
    """Runs a receiver with uvicorn on loopback inside the current event loop."""

    def __init__(self, app: WebhookReceiver, port: int = 0) -> None:
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/messages"

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


def describe(message: ReceivedMessage) -> str:
    """The message as a customer would see it, with what staff need to know around it."""
    body = message.payload
    about = body.get("case_id") or body.get("order_id") or ""
    meta = ", ".join(f"{k}={v}" for k, v in (body.get("meta") or {}).items())
    lines = [
        f"── {body['kind']} · {about} · customer {body.get('customer_id')} · {body['locale']}"
        + (f" · {meta}" if meta else ""),
        f"   {body['subject']}",
        *(f"   {line}" for line in body["text"].splitlines()),
    ]
    return "\n".join(lines)

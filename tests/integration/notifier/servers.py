"""Real servers on loopback standing in for the providers: each checks a request the way the
provider documents it (authentication, signature, required fields) and answers in its format.

Every stand-in can be told to answer with a list of status codes first, to exercise retries,
failover and circuit breakers.
"""

import asyncio
import base64
import errno
import hashlib
import hmac
import json
import re
import secrets
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from followup.stack.embedded import free_port

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


async def _body(receive: Receive) -> bytes:
    body: bytes = b""
    while True:
        event = await receive()
        chunk: bytes = event.get("body", b"")
        body += chunk
        if not event.get("more_body"):
            return body


async def _answer(
    send: Send, status: int, payload: Any, content_type: str = "application/json"
) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode())],
        }
    )
    await send({"type": "http.response.body", "body": raw})


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))


@dataclass
class StandIn:
    """Base of the HTTP stand-ins: records every request, answers from ``answers`` first."""

    answers: deque[int] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    accepted: list[Request] = field(default_factory=list)

    def fail_next(self, *statuses: int) -> None:
        self.answers.extend(statuses)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode()))
        request = Request(scope["path"], query, headers, await _body(receive))
        self.requests.append(request)
        if self.answers:
            status = self.answers.popleft()
            await _answer(send, status, self.failure(status))
            return
        status, payload = self.handle(request)
        if 200 <= status < 300 and self.delivered(payload):
            self.accepted.append(request)
        await _answer(send, status, payload)

    def handle(self, request: Request) -> tuple[int, Any]:
        raise NotImplementedError

    def failure(self, status: int) -> Any:
        return {"error": status}

    def delivered(self, payload: Any) -> bool:  # noqa: ARG002
        return True


@dataclass
class TwilioStandIn(StandIn):
    """Twilio's Messages resource: POST /2010-04-01/Accounts/{Sid}/Messages.json, form fields,
    HTTP Basic with the Account SID and Auth Token; 201 with the Message, or an error JSON."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "twilio-token-0123456789abcdef"
    refused_numbers: set[str] = field(default_factory=set)

    def failure(self, status: int) -> Any:
        return {"code": 20500, "message": "Internal Server Error", "status": status}

    def _error(self, status: int, code: int, message: str) -> tuple[int, Any]:
        return status, {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    def handle(self, request: Request) -> tuple[int, Any]:  # noqa: PLR0911 - one per check
        if request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return self._error(404, 20404, "The requested resource was not found")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return self._error(401, 20003, "Authentication Error - invalid username")
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return self._error(400, 20001, "Unsupported content type")
        form = request.form()
        to = form.get("To", "")
        if not _E164.match(to) or to in self.refused_numbers:
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(400, 21603, "The 'From' phone number is required.")
        if not form.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        if len(form["Body"]) > 1600:
            return self._error(400, 21617, "The concatenated message body exceeds 1600 characters.")
        return 201, {
            "sid": "SM" + secrets.token_hex(16),
            "status": "queued",
            "to": to,
            "from": form.get("From"),
            "body": form["Body"],
            "account_sid": self.account_sid,
        }


@dataclass
class DingTalkStandIn(StandIn):
    """A DingTalk group robot with 加签: timestamp (ms) within an hour of ``now`` and
    sign = urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}"))); HTTP 200 with
    errcode 0, or 310000 when the signature does not match."""

    secret: str = "SEC" + "a" * 61
    now: Callable[[], datetime] | None = None

    def failure(self, status: int) -> Any:  # noqa: ARG002
        return {"errcode": -1, "errmsg": "system busy"}

    def handle(self, request: Request) -> tuple[int, Any]:
        timestamp = request.query.get("timestamp", "")
        sign = request.query.get("sign", "")
        if self.now is not None and timestamp.isdigit():
            drift_ms = abs(int(self.now().timestamp() * 1000) - int(timestamp))
            if drift_ms > 3_600_000:
                return 200, {"errcode": 310000, "errmsg": "timestamp expired"}
        digest = hmac.new(
            self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256
        ).digest()
        if not timestamp or sign != base64.b64encode(digest).decode():
            return 200, {"errcode": 310000, "errmsg": "sign not match"}
        body = request.json()
        if body.get("msgtype") != "markdown" or not body.get("markdown", {}).get("text"):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 markdown.text"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def delivered(self, payload: Any) -> bool:
        return bool(payload.get("errcode") == 0)


@dataclass
class SlackStandIn(StandIn):
    """A Slack incoming webhook: JSON with ``text`` (and optional blocks); answers ``ok``."""

    def failure(self, status: int) -> Any:
        return b"no_service" if status == 404 else b"internal_error"

    def handle(self, request: Request) -> tuple[int, Any]:
        try:
            body = request.json()
        except ValueError:
            return 400, b"invalid_payload"
        if not isinstance(body, dict) or not body.get("text"):
            return 400, b"no_text"
        return 200, b"ok"


class HttpServer:
    """Runs an ASGI stand-in with uvicorn on loopback in the current event loop."""

    def __init__(self, app: Any) -> None:
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message


class MailHandler:
    """aiosmtpd handler: a real SMTP server conversation; refuses listed mailboxes with 550."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.refused: set[str] = set()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook and its arguments
        self,
        server: SMTP,  # noqa: ARG002
        session: Session,  # noqa: ARG002
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],  # noqa: ARG002
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self,
        server: SMTP,  # noqa: ARG002
        session: Session,  # noqa: ARG002
        envelope: Envelope,
    ) -> str:
        raw = envelope.original_content or b""
        self.mails.append(
            Mail(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                message_from_bytes(raw, policy=email_policy.default),
            )
        )
        return "250 Message accepted for delivery"


_BIND_TRIES = 5


class SmtpServer:
    def __init__(self) -> None:
        self.handler = MailHandler()
        self._port = 0

    def start(self) -> str:
        # aiosmtpd needs the port up front, and a port free a moment ago may be taken (by
        # another test's outgoing connection) before the server binds it: take another.
        for tries_left in reversed(range(_BIND_TRIES)):
            self._port = free_port()
            self._controller = Controller(self.handler, hostname="127.0.0.1", port=self._port)
            try:
                self._controller.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or not tries_left:
                    raise
            else:
                break
        return f"smtp://127.0.0.1:{self._port}"

    def stop(self) -> None:
        self._controller.stop()

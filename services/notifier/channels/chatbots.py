"""Staff chat-bot webhooks for escalations: DingTalk, WeCom and Feishu group robots, and Slack
incoming webhooks, each in its own documented request format.

The Chinese robots answer HTTP 200 with an error code in the body; rate limits and the
robot's own security settings (signature, keyword, IP allow-list) are temporary from the
message's point of view: the circuit breaker then moves escalations to the backup bot.
"""

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from services.notifier.channels import (
    HttpAnswer,
    Outcome,
    OutgoingMessage,
    SendResult,
    status_outcome,
)
from services.notifier.channels.httpclient import HttpClient

Now = Callable[[], datetime]


def _markdown(message: OutgoingMessage) -> str:
    # Both robots render a blank line as a paragraph break; single newlines would be lost.
    body = "\n\n".join(line for line in message.text.splitlines() if line.strip())
    return f"#### {message.subject}\n\n{body}"


def _plain(message: OutgoingMessage) -> str:
    return f"{message.subject}\n{message.text}"


async def _post_json(
    client: HttpClient, url: str, payload: dict[str, Any]
) -> HttpAnswer | SendResult:
    return await client.post(
        url,
        data=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


def _error_code_reply(
    answer: HttpAnswer, bot: str, code_key: str, message_key: str, temporary: frozenset[int]
) -> SendResult:
    outcome = status_outcome(answer.status)
    if outcome is not Outcome.DELIVERED:
        return SendResult(outcome, f"{bot} HTTP {answer.status}: {answer.text[:200]}")
    body = answer.json()
    if not isinstance(body, dict):
        return SendResult(Outcome.RETRY, f"{bot}: unreadable answer {answer.text[:200]!r}")
    code = body.get(code_key, body.get("StatusCode", -1))
    if code == 0:
        return SendResult(Outcome.DELIVERED, f"{bot} ok")
    reason = f"{bot} {code}: {body.get(message_key, '')}"
    return SendResult(Outcome.RETRY if code in temporary else Outcome.PERMANENT, reason)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64 of HMAC-SHA256 over ``"{timestamp}\\n{secret}"`` keyed by the
    secret, URL-encoded into the query string."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


class DingTalkBot:
    channel = "ops"
    name = "dingtalk"
    # -1 system busy, 130101 sending too fast, 310000 the robot's security settings refused
    # (signature, keyword or IP allow-list: our configuration, not the message).
    _TEMPORARY: ClassVar[frozenset[int]] = frozenset({-1, 130101, 310000})

    def __init__(self, url: str, secret: str, client: HttpClient, now: Now) -> None:
        self._url = url
        self._secret = secret
        self._client = client
        self._now = now

    def signed_url(self) -> str:
        timestamp = int(self._now().timestamp() * 1000)
        sign = urllib.parse.quote_plus(dingtalk_sign(self._secret, timestamp))
        separator = "&" if "?" in self._url else "?"
        return f"{self._url}{separator}timestamp={timestamp}&sign={sign}"

    async def send(self, message: OutgoingMessage) -> SendResult:
        payload = {
            "msgtype": "markdown",
            "markdown": {"title": message.subject, "text": _markdown(message)},
        }
        answer = await _post_json(self._client, self.signed_url(), payload)
        if isinstance(answer, SendResult):
            return answer
        return _error_code_reply(answer, "dingtalk", "errcode", "errmsg", self._TEMPORARY)


class WeComBot:
    channel = "ops"
    name = "wecom"
    # -1 system busy, 45009 over the robot's rate limit, 93000 the webhook key is invalid.
    _TEMPORARY: ClassVar[frozenset[int]] = frozenset({-1, 45009, 93000})

    def __init__(self, url: str, client: HttpClient) -> None:
        self._url = url
        self._client = client

    async def send(self, message: OutgoingMessage) -> SendResult:
        payload = {"msgtype": "markdown", "markdown": {"content": _markdown(message)}}
        answer = await _post_json(self._client, self._url, payload)
        if isinstance(answer, SendResult):
            return answer
        return _error_code_reply(answer, "wecom", "errcode", "errmsg", self._TEMPORARY)


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature: base64 of HMAC-SHA256 keyed by ``"{timestamp}\\n{secret}"`` over
    an empty message."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FeishuBot:
    channel = "ops"
    name = "feishu"
    # 9499 / 11232 rate limited, 19021 signature check failed (our secret or clock).
    _TEMPORARY: ClassVar[frozenset[int]] = frozenset({-1, 9499, 11232, 19021})

    def __init__(self, url: str, secret: str | None, client: HttpClient, now: Now) -> None:
        self._url = url
        self._secret = secret
        self._client = client
        self._now = now

    async def send(self, message: OutgoingMessage) -> SendResult:
        payload: dict[str, Any] = {"msg_type": "text", "content": {"text": _plain(message)}}
        if self._secret:
            timestamp = int(self._now().timestamp())
            payload = {
                "timestamp": str(timestamp),
                "sign": feishu_sign(self._secret, timestamp),
                **payload,
            }
        answer = await _post_json(self._client, self._url, payload)
        if isinstance(answer, SendResult):
            return answer
        return _error_code_reply(answer, "feishu", "code", "msg", self._TEMPORARY)


class SlackBot:
    channel = "ops"
    name = "slack"

    def __init__(self, url: str, client: HttpClient) -> None:
        self._url = url
        self._client = client

    async def send(self, message: OutgoingMessage) -> SendResult:
        payload = {
            "text": _plain(message),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": message.text[:3000]}},
            ],
        }
        answer = await _post_json(self._client, self._url, payload)
        if isinstance(answer, SendResult):
            return answer
        outcome = status_outcome(answer.status)
        reason = f"slack HTTP {answer.status}: {answer.text[:200]}"
        # 403 action_prohibited, 404 no_service, 410 channel_is_archived: the webhook itself
        # is gone, which no message can fix: move to the backup bot.
        if answer.status in (403, 404, 410):
            return SendResult(Outcome.RETRY, reason)
        return SendResult(outcome, "slack ok" if outcome is Outcome.DELIVERED else reason)

"""E-mail over SMTP (RFC 5321) with the standard library's client, run in a worker thread.

``smtp://user:pass@host:587`` upgrades with STARTTLS when the server offers it,
``smtp+starttls://`` insists on it, ``smtps://host:465`` is TLS from the first byte. A 5xx
reply refuses the message for good (unknown mailbox, rejected content); a 4xx reply or no
connection is temporary.
"""

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from followup.pii import scrub
from services.notifier.channels import Outcome, OutgoingMessage, SendResult

_TIMEOUT_S = 10.0


class SmtpEmail:
    channel = "email"

    def __init__(self, url: str, sender: str, *, name: str = "smtp") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
            raise ValueError(
                "SMTP URL must look like smtp://user:pass@host:587, smtp+starttls://… "
                f"or smtps://host:465 (given scheme {parts.scheme!r})"
            )
        self.name = name
        self._implicit_tls = parts.scheme == "smtps"
        self._require_starttls = parts.scheme == "smtp+starttls"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._implicit_tls else 587)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender

    def compose(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = self._sender
        email["To"] = message.email or ""
        email["Date"] = formatdate(localtime=False)
        # Derived from the message id: a retried send carries the same Message-ID, so mail
        # systems that deduplicate on it show the customer one e-mail.
        email["Message-ID"] = f"<{message.message_id}@followup.notifier>"
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.text)
        return email

    async def send(self, message: OutgoingMessage) -> SendResult:
        if not message.email:
            return SendResult(Outcome.PERMANENT, "no e-mail address")
        email = self.compose(message)
        return await asyncio.to_thread(self._send_blocking, email, message.email)

    def _send_blocking(self, email: EmailMessage, to: str) -> SendResult:
        try:
            with self._connect() as smtp:
                if self._user and self._password:
                    smtp.login(self._user, self._password)
                refused = smtp.send_message(email, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            return _reply(code, reason)
        except smtplib.SMTPAuthenticationError as exc:
            # Our credentials, not the message: temporary, so the backup server takes over.
            return SendResult(Outcome.RETRY, f"smtp {exc.smtp_code}: authentication failed")
        except smtplib.SMTPResponseException as exc:
            return _reply(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:300])
        if refused:
            code, reason = next(iter(refused.values()))
            return _reply(code, reason)
        return SendResult(Outcome.DELIVERED, "250 accepted")

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self._implicit_tls:
            return smtplib.SMTP_SSL(self._host, self._port, timeout=_TIMEOUT_S, context=context)
        smtp = smtplib.SMTP(self._host, self._port, timeout=_TIMEOUT_S)
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        elif self._require_starttls:
            smtp.close()
            raise smtplib.SMTPNotSupportedError("server does not offer STARTTLS")
        return smtp


def _reply(code: int, reason: bytes | str) -> SendResult:
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else reason
    outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.RETRY
    # Servers quote the address they refuse; the reason is published, the address is not.
    return SendResult(outcome, f"smtp {code}: {scrub(text)}"[:300])

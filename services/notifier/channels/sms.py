"""SMS through Twilio's Programmable Messaging REST API (Messages resource, API 2010-04-01).

``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded ``To``, ``Body``
and either ``From`` (a Twilio number) or ``MessagingServiceSid`` (``MG…``), authenticated with
HTTP Basic (Account SID as user, Auth Token as password). Twilio answers ``201 Created`` with
the Message resource (``sid``, ``status``); an error is JSON ``{code, message, more_info,
status}`` with the HTTP status.
"""

import base64

from followup.pii import scrub
from services.notifier.channels import Outcome, OutgoingMessage, SendResult, status_outcome
from services.notifier.channels.httpclient import HttpClient

API_VERSION = "2010-04-01"


class TwilioSms:
    channel = "sms"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        client: HttpClient,
        api_url: str = "https://api.twilio.com",
        name: str = "twilio",
    ) -> None:
        self.name = name
        self._url = f"{api_url.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._authorization = f"Basic {credentials}"
        self._sender_field = "MessagingServiceSid" if sender.startswith("MG") else "From"
        self._sender = sender
        self._client = client

    async def send(self, message: OutgoingMessage) -> SendResult:
        if not message.phone:
            return SendResult(Outcome.PERMANENT, "no phone number")
        form = {"To": message.phone, self._sender_field: self._sender, "Body": message.sms}
        answer = await self._client.post(
            self._url, data=form, headers={"Authorization": self._authorization}
        )
        if isinstance(answer, SendResult):
            return answer
        resource = answer.json()
        if not isinstance(resource, dict):
            resource = {}
        outcome = status_outcome(answer.status)
        if outcome is Outcome.DELIVERED:
            return SendResult(outcome, f"{resource.get('sid', '?')} {resource.get('status', '')}")
        # Twilio's message names the number; the reason is kept and published, the number
        # is not (it stays with the recipient's record).
        reason = f"twilio {resource.get('code', answer.status)}: " + scrub(
            str(resource.get("message") or answer.text[:200])
        )
        # Wrong credentials or a suspended account are the provider's side, not the
        # message's: retried (and counted by the circuit breaker) so the backup takes over.
        if answer.status in (401, 403):
            return SendResult(Outcome.RETRY, reason)
        return SendResult(outcome, reason)

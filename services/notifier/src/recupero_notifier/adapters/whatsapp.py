"""WhatsApp Business Cloud API: template messages, session text, and the signed webhooks.

Outside the 24-hour customer service window only an approved template may be sent: the action's
template name (`first-reminder` -> `first_reminder`) in the debtor's language with the body
parameters name, amount and due date. Inside it, the rendered short text. Every send carries the
action id as `biz_opaque_callback_data`, which Meta returns in each status webhook: that is how a
send whose response was lost is reconciled instead of repeated.
"""

import hashlib
import hmac
from typing import Any

import httpx

from recupero_events import ActionDue
from recupero_notifier.adapters.accounts import ByTenant
from recupero_notifier.adapters.http import ProviderClient
from recupero_notifier.adapters.providers import ProviderRefused, TokenBucket, post, with_retries
from recupero_notifier.domain.messages import ReminderContext, RenderedMessage, phone_of

PROVIDER = "whatsapp-cloud"


def template_name(template: str) -> str:
    """Meta's template names are lowercase with underscores."""
    return template.replace("-", "_").lower()


def language_code(locale: str) -> str:
    """BCP-47 `es-MX` -> WhatsApp's `es_MX`."""
    return locale.replace("-", "_")


def graph_error(response: httpx.Response) -> str:
    """`131030: Recipient phone number not in allowed list` from a Graph API error body."""
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>`."""
    if header is None or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


class WhatsAppCloud:
    provider = PROVIDER
    confirmed_by_callback = True

    def __init__(
        self,
        client: ProviderClient,
        *,
        api_url: str,
        api_version: str,
        phone_number_id: str,
        access_token: str,
        limiter: TokenBucket,
        retry_budget_seconds: float,
    ) -> None:
        self._client = client
        self.phone_number_id = phone_number_id
        self._url = f"{api_url.rstrip('/')}/{api_version}/{phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._limiter = limiter
        self._retry_budget = retry_budget_seconds

    def recipient(self, action: ActionDue) -> str:
        return phone_of(action)

    def request_body(
        self, action: ActionDue, rendered: RenderedMessage, session_open: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": self.recipient(action).removeprefix("+"),
            "biz_opaque_callback_data": str(action.action_id),
        }
        if session_open:
            return body | {"type": "text", "text": {"preview_url": False, "body": rendered.short}}
        parameters = ReminderContext.for_action(action).template_parameters()
        return body | {
            "type": "template",
            "template": {
                "name": template_name(action.template),
                "language": {"code": language_code(action.contact.locale)},
                "components": [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "text": value} for value in parameters],
                    }
                ],
            },
        }

    async def send(self, action: ActionDue, rendered: RenderedMessage, session_open: bool) -> str:
        return await self._post(self.request_body(action, rendered, session_open))

    async def send_session_text(self, to: str, text: str) -> str:
        """Free text inside the 24-hour window the debtor opened by writing (the bot's replies).
        No action id rides along: its status callbacks settle no delivery."""
        return await self._post(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to.removeprefix("+"),
                "type": "text",
                "text": {"preview_url": False, "body": text},
            }
        )

    async def _post(self, body: dict[str, Any]) -> str:

        async def attempt() -> str:
            await self._limiter.acquire()
            response = await post(
                self._client, self._url, graph_error, json=body, headers=self._headers
            )
            wamid: str = response.json()["messages"][0]["id"]
            return wamid

        return await with_retries(attempt, self._retry_budget)


class WhatsAppChannel:
    """The WhatsApp channel: each action leaves from its tenant's business number (its own, or
    the default one)."""

    provider = PROVIDER
    confirmed_by_callback = True

    def __init__(self, numbers: ByTenant[WhatsAppCloud]) -> None:
        self._numbers = numbers

    def recipient(self, action: ActionDue) -> str:
        return phone_of(action)

    async def send(self, action: ActionDue, rendered: RenderedMessage, session_open: bool) -> str:
        number = self._numbers.for_tenant(action.tenant_id)
        if number is None:
            # Refused, so the orchestrator falls back to a channel the tenant has.
            raise ProviderRefused(f"tenant {action.tenant_id} has no WhatsApp Business account")
        return await number.send(action, rendered, session_open)

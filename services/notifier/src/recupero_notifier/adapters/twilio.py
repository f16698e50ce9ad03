"""Twilio: SMS through the Messages resource, IVR calls through the Calls resource.

Both carry the action id in their callback URLs (StatusCallback, the Gather's action): Twilio
signs the full URL, so the id cannot be altered, and a send whose response was lost is reconciled
by its status callback instead of repeated.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode
from xml.etree.ElementTree import Element, SubElement, tostring

import httpx

from recupero_events import ActionDue
from recupero_notifier.adapters.accounts import ByTenant
from recupero_notifier.adapters.http import ProviderClient
from recupero_notifier.adapters.providers import ProviderRefused, TokenBucket, post, with_retries
from recupero_notifier.domain.messages import RenderedMessage, phone_of
from recupero_notifier.domain.replies import ivr_texts

PROVIDER = "twilio"
STATUS_PATH = "/webhooks/twilio/status"
GATHER_PATH = "/webhooks/twilio/gather"
# Twilio's <Say> speaks these Spanish variants; other Spanish locales hear Mexican Spanish.
SAY_LANGUAGES = {"es-MX", "es-ES", "es-US", "en-US"}


def twilio_error(response: httpx.Response) -> str:
    """`21211: The 'To' number ... is not a valid phone number.` from a Twilio error body."""
    try:
        error = response.json()
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def signature_valid(
    auth_token: str, url: str, params: Mapping[str, str], header: str | None
) -> bool:
    """`X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the auth token, of the full URL
    followed by each POST parameter, sorted by name, as name + value."""
    if header is None:
        return False
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    expected = base64.b64encode(
        hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    ).decode()
    return hmac.compare_digest(expected, header)


def say_language(locale: str) -> str:
    return locale if locale in SAY_LANGUAGES else "es-MX"


def twiml(action: ActionDue, rendered: RenderedMessage, gather_url: str) -> str:
    """Read the debt, then gather one key: 1 promise to pay, 2 talk to an agent."""
    language = say_language(action.contact.locale)
    response = Element("Response")
    gather = SubElement(
        response, "Gather", numDigits="1", action=gather_url, method="POST", timeout="8"
    )
    texts = ivr_texts(action.contact.locale)
    SubElement(gather, "Say", language=language).text = f"{rendered.voice} {texts.prompt}"
    SubElement(response, "Say", language=language).text = texts.no_answer
    return tostring(response, encoding="unicode")


class TwilioAccount:
    """One Twilio account and its sender numbers; the SMS and IVR adapters share its rate
    limit."""

    def __init__(
        self,
        client: ProviderClient,
        *,
        api_url: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        public_url: str,
        limiter: TokenBucket,
        retry_budget_seconds: float,
        voice_from_number: str | None = None,
    ) -> None:
        self.client = client
        self.account_sid = account_sid
        self.base = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}"
        # Basic auth, as `httpx.BasicAuth` writes it.
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {credentials}"}
        self.from_number = from_number
        self.voice_from_number = voice_from_number or from_number
        self.public_url = public_url.rstrip("/")
        self.limiter = limiter
        self.retry_budget = retry_budget_seconds

    def callback(self, path: str, action: ActionDue, **params: str) -> str:
        query = urlencode({"action_id": str(action.action_id), **params})
        return f"{self.public_url}{path}?{query}"

    async def create(self, resource: str, form: dict[str, str]) -> str:
        async def attempt() -> str:
            await self.limiter.acquire()
            response = await post(
                self.client,
                f"{self.base}/{resource}",
                twilio_error,
                data=form,
                headers=self.headers,
            )
            sid: str = response.json()["sid"]
            return sid

        return await with_retries(attempt, self.retry_budget)


def account_of(accounts: ByTenant[TwilioAccount], action: ActionDue) -> TwilioAccount:
    """The tenant's own Twilio account, or the default one."""
    account = accounts.for_tenant(action.tenant_id)
    if account is None:
        # Refused, so the orchestrator falls back to a channel the tenant has.
        raise ProviderRefused(f"tenant {action.tenant_id} has no Twilio account")
    return account


class _TwilioChannel:
    """What SMS and voice share: the tenant's account, the phone number, the status callback."""

    provider = PROVIDER
    confirmed_by_callback = True

    def __init__(self, accounts: ByTenant[TwilioAccount]) -> None:
        self._accounts = accounts

    def recipient(self, action: ActionDue) -> str:
        return phone_of(action)


class TwilioSms(_TwilioChannel):
    async def send(self, action: ActionDue, rendered: RenderedMessage, session_open: bool) -> str:
        account = account_of(self._accounts, action)
        return await account.create(
            "Messages.json",
            {
                "To": self.recipient(action),
                "From": account.from_number,
                "Body": rendered.short,
                "StatusCallback": account.callback(STATUS_PATH, action),
            },
        )


class TwilioVoice(_TwilioChannel):
    async def send(self, action: ActionDue, rendered: RenderedMessage, session_open: bool) -> str:
        account = account_of(self._accounts, action)
        return await account.create(
            "Calls.json",
            {
                "To": self.recipient(action),
                "From": account.voice_from_number,
                "Twiml": twiml(
                    action,
                    rendered,
                    account.callback(GATHER_PATH, action, locale=action.contact.locale),
                ),
                "StatusCallback": account.callback(STATUS_PATH, action),
                "StatusCallbackEvent": "completed",
            },
        )

"""Provider webhooks: verified, translated, applied once. Nothing here trusts a request before its
signature is checked against the raw body (WhatsApp) or the full URL and parameters (Twilio).

Refusals change nothing: a bad or missing signature is a 401, a WhatsApp notification whose
`timestamp` is outside the replay window a 400, and a callback already applied (same message and
status; Twilio has no timestamp, so this is its replay defence) a 409.

The WhatsApp bot's answers are sent after the notification's transaction commits: a crash in
between loses an answer (the debtor writes again), never repeats a promise.
"""

import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl
from uuid import UUID
from xml.etree.ElementTree import Element, SubElement, tostring

import structlog
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import PlainTextResponse

from recupero_events import Channel, MessageStatus
from recupero_notifier import handlers
from recupero_notifier.adapters import twilio, whatsapp
from recupero_notifier.adapters.accounts import AccountScope
from recupero_notifier.adapters.providers import NotAccepted, ProviderRefused
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_runtime.db import UnitOfWork

log = structlog.get_logger()

Units = Callable[[str | None], UnitOfWork[NotifierRepository]]

# A signed notification may be a little ahead of our clock, never minutes.
CLOCK_SKEW = timedelta(seconds=60)

WHATSAPP_STATUS = {
    "sent": None,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "failed": MessageStatus.FAILED,
}
TWILIO_MESSAGE_STATUS = {
    "queued": None,
    "accepted": None,
    "sending": None,
    "sent": None,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "undelivered": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
}
TWILIO_CALL_STATUS = {
    "queued": None,
    "initiated": None,
    "ringing": None,
    "in-progress": None,
    "completed": MessageStatus.DELIVERED,
    "busy": MessageStatus.FAILED,
    "no-answer": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}


@dataclass(frozen=True)
class SigningAccount:
    """A provider account's webhook secret (WhatsApp app secret, Twilio Auth Token) and the
    tenants whose messages its webhooks may speak about."""

    secret: str
    scope: AccountScope


@dataclass(frozen=True)
class WebhookSecrets:
    """What verifies the providers' requests: per account, as each request names the account it
    is addressed to. Empty for a provider not configured."""

    public_url: str
    max_age: timedelta
    # Meta's subscription handshake: the verify token of any configured app (default or tenant).
    whatsapp_verify_tokens: tuple[str, ...]
    # By phone number id (each notification's `metadata.phone_number_id`).
    whatsapp: Mapping[str, SigningAccount]
    # By Account SID (each callback's `AccountSid`).
    twilio: Mapping[str, SigningAccount]


class SessionTexts(Protocol):
    """Sends free text inside the window the debtor opened (`adapters.whatsapp.WhatsAppCloud`)."""

    async def send_session_text(self, to: str, text: str) -> str: ...


@dataclass(frozen=True)
class Chatbot:
    """The WhatsApp bot: how it behaves and how its answers leave (from the number the debtor
    wrote to, by phone number id)."""

    policy: handlers.ChatbotPolicy
    senders: Mapping[str, SessionTexts]


async def _send_answers(sender: SessionTexts, answers: list[handlers.OutgoingText]) -> None:
    # In order, one at a time: the debtor reads them as one answer.
    for answer in answers:
        try:
            await sender.send_session_text(answer.to, answer.text)
        except (ProviderRefused, NotAccepted) as exc:
            log.warning("chatbot_answer_not_sent", reason=str(exc))
            return


def _refused(code: int, reason: str) -> HTTPException:
    log.warning("webhook_refused", status=code, reason=reason)
    return HTTPException(code, detail=reason)


def _twiml(say: str | None = None) -> Response:
    response = Element("Response")
    if say is not None:
        SubElement(response, "Say", language="es-MX").text = say
    return Response(tostring(response, encoding="unicode"), media_type="text/xml")


def _addressed_to(payload: Any) -> set[str]:
    """The business phone number ids a notification is about (Meta sends one per change)."""
    return {
        str(change.get("value", {}).get("metadata", {}).get("phone_number_id"))
        for entry in payload.get("entry", [])
        for change in entry.get("changes", [])
    }


def _whatsapp_items(payload: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """("status" | "message", item) for every item of a notification, in order."""
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            for item in value.get("statuses", []):
                yield "status", item
            for item in value.get("messages", []):
                yield "message", item


def _action_id(value: object) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _whatsapp_status(item: dict[str, Any], at: datetime) -> handlers.StatusReport | None:
    action_id = _action_id(item.get("biz_opaque_callback_data"))
    if action_id is None or item.get("status") not in WHATSAPP_STATUS:
        return None
    errors = item.get("errors") or []
    detail = "; ".join(f"{e.get('code')}: {e.get('title')}" for e in errors) or None
    return handlers.StatusReport(
        provider=whatsapp.PROVIDER,
        action_id=action_id,
        message_id=str(item["id"]),
        status=WHATSAPP_STATUS[item["status"]],
        occurred_at=at,
        detail=detail,
        callback_key=f"{item['id']}:{item['status']}",
    )


def _whatsapp_text(item: dict[str, Any]) -> str:
    if item.get("type") == "text":
        return str(item.get("text", {}).get("body", ""))
    if item.get("type") == "button":
        return str(item.get("button", {}).get("text", ""))
    return ""


def webhook_router(
    secrets: WebhookSecrets,
    units: Units,
    chatbot: Chatbot | None = None,
    *,
    max_promise_days: int,
) -> APIRouter:
    """`max_promise_days`: the tenant's promise policy, shared by the bot and the IVR."""
    router = APIRouter(prefix="/webhooks", tags=["provider webhooks"])

    @router.get("/whatsapp", response_class=PlainTextResponse)
    async def whatsapp_subscription(
        mode: str = Query(alias="hub.mode"),
        verify_token: str = Query(alias="hub.verify_token"),
        challenge: str = Query(alias="hub.challenge"),
    ) -> str:
        """Meta's subscription handshake, made per app: echo the challenge for the verify token
        of any configured WhatsApp account (the default's or a tenant's)."""
        if not secrets.whatsapp_verify_tokens:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "WhatsApp is not configured")
        given = verify_token.encode()
        # Every token is compared, in constant time, so the answer's timing tells nothing.
        matches = [
            hmac.compare_digest(given, token.encode()) for token in secrets.whatsapp_verify_tokens
        ]
        if mode != "subscribe" or not any(matches):
            raise _refused(status.HTTP_403_FORBIDDEN, "verify token does not match")
        return challenge

    @router.post("/whatsapp")
    async def whatsapp_notification(request: Request) -> dict[str, int]:
        """Status changes of our messages and messages debtors wrote, signed by Meta."""
        if not secrets.whatsapp:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "WhatsApp is not configured")
        body = await request.body()
        try:
            payload = json.loads(body)
            addressed = _addressed_to(payload)
        except (ValueError, TypeError, AttributeError) as exc:
            raise _refused(status.HTTP_400_BAD_REQUEST, "not a WhatsApp notification") from exc
        # Verified with the secret of the account it is addressed to: another tenant's secret,
        # or a notification for several accounts at once, does not pass.
        phone_number_id = next(iter(addressed)) if len(addressed) == 1 else ""
        account = secrets.whatsapp.get(phone_number_id)
        header = request.headers.get("x-hub-signature-256")
        if account is None or not whatsapp.signature_valid(account.secret, body, header):
            raise _refused(status.HTTP_401_UNAUTHORIZED, "bad X-Hub-Signature-256")
        try:
            items = list(_whatsapp_items(payload))
            stamped = [
                (kind, item, datetime.fromtimestamp(int(item["timestamp"]), UTC))
                for kind, item in items
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _refused(
                status.HTTP_400_BAD_REQUEST, f"not a WhatsApp notification: {exc}"
            ) from exc
        now = datetime.now(UTC)
        for _, _, at in stamped:
            if not now - secrets.max_age <= at <= now + CLOCK_SKEW:
                raise _refused(
                    status.HTTP_400_BAD_REQUEST, f"stale notification: timestamp {at.isoformat()}"
                )
        answers: list[handlers.OutgoingText] = []
        async with units(request.state.correlation_id) as uow:
            # The notification's statuses in one statement (Meta sends many in one under load).
            reports = [
                report
                for kind, item, at in stamped
                if kind == "status" and (report := _whatsapp_status(item, at)) is not None
            ]
            applied = await handlers.apply_status_reports(reports, uow, account.scope.serves)
            replayed = len({report.callback_key for report in reports}) - applied
            for kind, item, at in stamped:
                if kind == "status":
                    continue
                reply = handlers.InboundReply(
                    provider=whatsapp.PROVIDER,
                    channel=Channel.WHATSAPP,
                    address="+" + str(item["from"]).removeprefix("+"),
                    text=_whatsapp_text(item),
                    received_at=at,
                    callback_key=f"{item['id']}:inbound",
                )
                try:
                    answers += await handlers.apply_inbound_reply(
                        reply,
                        uow,
                        None if chatbot is None else chatbot.policy,
                        account.scope.serves,
                    )
                    applied += 1
                except handlers.CallbackReplayed:
                    replayed += 1
            await uow.commit()
        sender = None if chatbot is None else chatbot.senders.get(phone_number_id)
        if sender is not None and answers:
            await _send_answers(sender, answers)
        if replayed and not applied:
            raise _refused(status.HTTP_409_CONFLICT, "notification already applied")
        return {"applied": applied, "replayed": replayed}

    async def twilio_params(request: Request) -> tuple[dict[str, str], SigningAccount]:
        """The callback's parameters, verified with the Auth Token of its `AccountSid`."""
        if not secrets.twilio:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Twilio is not configured")
        params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        account = secrets.twilio.get(params.get("AccountSid", ""))
        # The URL Twilio was given (and signed): our public address, not the one we listen on.
        url = secrets.public_url.rstrip("/") + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        header = request.headers.get("x-twilio-signature")
        if account is None or not twilio.signature_valid(account.secret, url, params, header):
            raise _refused(status.HTTP_401_UNAUTHORIZED, "bad X-Twilio-Signature")
        return params, account

    @router.post("/twilio/status", status_code=status.HTTP_204_NO_CONTENT)
    async def twilio_status(request: Request, action_id: UUID) -> None:
        """Message and call status callbacks; the action id is in the URL we gave Twilio."""
        params, account = await twilio_params(request)
        if "CallSid" in params and "MessageSid" not in params:
            sid, reported = params["CallSid"], params.get("CallStatus", "")
            mapping = TWILIO_CALL_STATUS
            detail = None if reported == "completed" else f"call {reported}"
        else:
            sid, reported = params.get("MessageSid", ""), params.get("MessageStatus", "")
            mapping = TWILIO_MESSAGE_STATUS
            detail = f"{params['ErrorCode']}: {reported}" if params.get("ErrorCode") else None
        if not sid or reported not in mapping:
            raise _refused(status.HTTP_400_BAD_REQUEST, f"unknown Twilio status {reported!r}")
        report = handlers.StatusReport(
            provider=twilio.PROVIDER,
            action_id=action_id,
            message_id=sid,
            status=mapping[reported],
            occurred_at=datetime.now(UTC),
            detail=detail,
            callback_key=f"{sid}:{reported}",
        )
        async with units(request.state.correlation_id) as uow:
            try:
                await handlers.apply_status_report(report, uow, account.scope.serves)
            except handlers.CallbackReplayed as exc:
                raise _refused(status.HTTP_409_CONFLICT, f"already applied: {exc}") from exc
            await uow.commit()

    @router.post("/twilio/inbound")
    async def twilio_inbound(request: Request) -> Response:
        """An SMS a debtor sent to our number."""
        params, account = await twilio_params(request)
        reply = handlers.InboundReply(
            provider=twilio.PROVIDER,
            channel=Channel.SMS,
            address=params.get("From", ""),
            text=params.get("Body", ""),
            received_at=datetime.now(UTC),
            callback_key=f"{params.get('MessageSid', '')}:inbound",
        )
        async with units(request.state.correlation_id) as uow:
            try:
                await handlers.apply_inbound_reply(reply, uow, None, account.scope.serves)
            except handlers.CallbackReplayed as exc:
                raise _refused(status.HTTP_409_CONFLICT, f"already applied: {exc}") from exc
            await uow.commit()
        return _twiml()

    @router.post("/twilio/gather")
    async def twilio_gather(request: Request, action_id: UUID, locale: str = "es-MX") -> Response:
        """The key a debtor pressed on a collection call; answered with TwiML in the locale the
        call was placed in (its Gather URL names it)."""
        params, account = await twilio_params(request)
        async with units(request.state.correlation_id) as uow:
            try:
                answer = await handlers.apply_ivr_digits(
                    twilio.PROVIDER,
                    action_id,
                    params.get("CallSid", ""),
                    params.get("Digits", ""),
                    datetime.now(UTC),
                    uow,
                    max_promise_days,
                    account.scope.serves,
                    locale,
                )
            except handlers.CallbackReplayed as exc:
                raise _refused(status.HTTP_409_CONFLICT, f"already applied: {exc}") from exc
            await uow.commit()
        return _twiml(answer)

    return router

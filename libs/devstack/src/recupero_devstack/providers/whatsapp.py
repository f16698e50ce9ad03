"""A local WhatsApp Business Cloud API: the Graph API's messages endpoint and signed webhooks.

API (as Meta documents it):
    POST /v{version}/{phone_number_id}/messages   Bearer token; JSON `template` or `text` message
        200 {"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}],
             "messages": [{"id": "wamid...", "message_status": "accepted"}]}
        errors {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}
Webhooks to `webhook_url`, JSON signed `X-Hub-Signature-256: sha256=<HMAC-SHA256(app secret, body)>`:
status changes (`sent`, `delivered`, `read`, `failed` with `errors`) and inbound messages. As Meta
does, the statuses of a number that are ready within a short window (`status_window_seconds`)
leave together, in one notification's `entry[].changes[].value.statuses[]`.
A session text sent more than 24 hours after the user last wrote fails with 131047, as on WhatsApp.
One peer may serve several business numbers (`add_number`: tenants' own accounts), each with its
own token and app secret; its webhooks name the number and are signed with that secret.

Control API for tests and the demo:
    GET/DELETE /_peer/requests, GET /_peer/callbacks, POST /_peer/outage {"status", "seconds"}
    POST /_peer/messages/{wamid}/status {"status", "error_code"?}  -> sends that status webhook
    POST /_peer/inbound {"from", "text", "to"?}                     -> sends an inbound message
                                                        (to one business number by id)
    POST /_peer/subscribe                                           -> GET handshake on webhook_url
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from recupero_devstack.providers._peer import Outage, ProviderPeer, Record, tenant_accounts

__all__ = ["ERRORS", "WhatsAppCloudPeer", "add_arguments", "main", "serve", "signature"]

SESSION_WINDOW_SECONDS = 24 * 3600
# Statuses of one business number ready within this window share one notification, at most
# this many (Meta batches status updates the same way under load).
STATUS_WINDOW_SECONDS = 0.02
MAX_STATUSES_PER_NOTIFICATION = 100

# code -> (title, details) of the errors this peer reports, as WhatsApp words them.
ERRORS: dict[int, tuple[str, str]] = {
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
    ),
    131050: (
        "User has chosen to stop receiving marketing messages",
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
        "messages on WhatsApp from your business.",
    ),
    131026: ("Message undeliverable", "Unable to deliver message."),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached."),
}

_VERSION = re.compile(r"^v\d+\.\d+$")


def signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` header value Meta puts on every webhook."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _graph_error(
    status: int, code: int, message: str, *, kind: str = "OAuthException", subcode: int = 0
) -> JSONResponse:
    error: dict[str, Any] = {
        "message": message,
        "type": kind,
        "code": code,
        "error_subcode": subcode,
        "fbtrace_id": base64.urlsafe_b64encode(os.urandom(15)).decode(),
    }
    if code in ERRORS:
        error["error_data"] = {"messaging_product": "whatsapp", "details": ERRORS[code][1]}
    return JSONResponse({"error": error}, status_code=status)


def _invalid(message: str) -> JSONResponse:
    return _graph_error(400, 100, f"(#100) {message}")


def _wamid() -> str:
    return "wamid." + base64.b64encode(os.urandom(30)).decode()


@dataclass(frozen=True)
class BusinessNumber:
    """One WhatsApp Business phone number: its id, the token that may send from it, and the
    secret of the app its webhooks are signed with. A peer serves one or several."""

    phone_number_id: str
    access_token: str
    app_secret: str
    display_phone_number: str


class WhatsAppCloudPeer(ProviderPeer):
    name = "whatsapp"

    def __init__(
        self,
        port: int,
        *,
        access_token: str,
        app_secret: str,
        phone_number_id: str,
        verify_token: str,
        webhook_url: str | None = None,
        auto_status: bool = True,
        display_phone_number: str = "15550001234",
        status_window_seconds: float = STATUS_WINDOW_SECONDS,
    ) -> None:
        super().__init__(port)
        self.status_window_seconds = status_window_seconds
        # Business number -> status entries waiting for their notification.
        self._ready_statuses: dict[str, list[dict[str, Any]]] = {}
        self.access_token = access_token
        self.app_secret = app_secret
        self.phone_number_id = phone_number_id
        self.verify_token = verify_token
        self.webhook_url = webhook_url
        self.auto_status = auto_status
        self.display_phone_number = display_phone_number
        # (business number, wa_id) -> when the user last wrote to it: the 24-hour window.
        self._last_inbound: dict[tuple[str, str], float] = {}
        self.numbers: dict[str, BusinessNumber] = {}
        self.add_number(
            phone_number_id,
            access_token=access_token,
            app_secret=app_secret,
            display_phone_number=display_phone_number,
        )

    def add_number(
        self,
        phone_number_id: str,
        *,
        access_token: str,
        app_secret: str,
        display_phone_number: str = "15550001234",
    ) -> None:
        """Serve another business number (another tenant's account, another app secret)."""
        self.numbers[phone_number_id] = BusinessNumber(
            phone_number_id, access_token, app_secret, display_phone_number
        )

    # --- webhooks -------------------------------------------------------------------------------

    def webhook_body(self, value: dict[str, Any], phone_number_id: str | None = None) -> bytes:
        """A webhook notification around one `value`, as Meta nests it, for one business
        number (the first one by default)."""
        return json.dumps(self._notification(value, phone_number_id)).encode()

    def _notification(
        self, value: dict[str, Any], phone_number_id: str | None = None
    ) -> dict[str, Any]:
        number = self.numbers[phone_number_id or self.phone_number_id]
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": number.display_phone_number,
                                    "phone_number_id": number.phone_number_id,
                                },
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    def status_value(
        self, message: Record, status: str, error_code: int | None = None
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": message["id"],
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": message["wa_id"],
        }
        if message.get("biz_opaque_callback_data") is not None:
            entry["biz_opaque_callback_data"] = message["biz_opaque_callback_data"]
        if status == "failed":
            code = error_code or 131026
            title, details = ERRORS.get(code, ("Message failed", "Message failed to send."))
            entry["errors"] = [
                {"code": code, "title": title, "message": title, "error_data": {"details": details}}
            ]
        return {"statuses": [entry]}

    async def _send_webhook(
        self, value: dict[str, Any], kind: str, phone_number_id: str | None = None
    ) -> None:
        if self.webhook_url is None:
            return
        number = self.numbers[phone_number_id or self.phone_number_id]
        payload = self._notification(value, number.phone_number_id)
        body = json.dumps(payload).encode()
        await self._post_callback(
            self.webhook_url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": signature(number.app_secret, body),
            },
            record={"kind": kind, "body": payload},
        )

    async def send_status(self, wamid: str, status: str, error_code: int | None = None) -> None:
        message = self._find("id", wamid)
        if message is None:
            raise LookupError(f"no message {wamid}")
        await self._send_webhook(
            self.status_value(message, status, error_code),
            f"status:{status}",
            message["phone_number_id"],
        )

    async def send_inbound(
        self, wa_id: str, text: str, name: str = "Cliente", to: str | None = None
    ) -> str:
        """The user writes to the business number `to` (a phone number id; the first by
        default): opens the 24-hour window, reaches the webhook."""
        wa_id = wa_id.removeprefix("+")
        to = to or self.phone_number_id
        self._last_inbound[(to, wa_id)] = time.time()
        wamid = _wamid()
        value = {
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": wamid,
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        }
        await self._send_webhook(value, "inbound", to)
        return wamid

    async def verify_subscription(self) -> bool:
        """Meta's GET handshake: the endpoint must echo `hub.challenge` for our verify token."""
        assert self._client is not None and self.webhook_url is not None
        challenge = str(secrets.randbelow(10**9))
        response = await self._client.get(
            self.webhook_url,
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": self.verify_token,
                "hub.challenge": challenge,
            },
        )
        return response.status_code == 200 and response.text == challenge

    def _after_accept(self, message: Record) -> None:
        number = message["phone_number_id"]
        last_inbound = self._last_inbound.get((number, message["wa_id"]), 0)
        window_closed = (
            message["type"] == "text" and time.time() - last_inbound > SESSION_WINDOW_SECONDS
        )
        if window_closed:
            self._status_ready(number, self.status_value(message, "failed", 131047))
            return
        for status in ("sent", "delivered"):
            self._status_ready(number, self.status_value(message, status))

    def _status_ready(self, number: str, value: dict[str, Any]) -> None:
        """Queue a status for the number's next notification: it leaves when the window that
        its number's first waiting status opened closes, or when the notification is full."""
        waiting = self._ready_statuses.setdefault(number, [])
        waiting.extend(value["statuses"])
        if len(waiting) >= MAX_STATUSES_PER_NOTIFICATION:
            self._statuses_due(number)
        elif len(waiting) == len(value["statuses"]):
            assert self._loop is not None
            self._loop.call_later(self.status_window_seconds, self._statuses_due, number)

    def _statuses_due(self, number: str) -> None:
        statuses = self._ready_statuses.pop(number, [])
        for start in range(0, len(statuses), MAX_STATUSES_PER_NOTIFICATION):
            batch = statuses[start : start + MAX_STATUSES_PER_NOTIFICATION]
            kind = f"status:{batch[0]['status']}" if len(batch) == 1 else "statuses"
            self._in_background(self._send_webhook({"statuses": batch}, kind, number))

    # --- the Graph API --------------------------------------------------------------------------

    def outage_response(self, outage: Outage) -> Response:
        if outage.status == 429:
            return _graph_error(429, 130429, "(#130429) Rate limit hit")
        return _graph_error(outage.status, 1, "An unknown error has occurred.")

    async def _messages(self, request: Request) -> Response:
        refused = self._outage_reply()
        if refused is not None:
            return refused
        if not _VERSION.match(request.path_params["version"]):
            return _graph_error(400, 2500, "Unknown path components", kind="OAuthException")
        authorization = request.headers.get("authorization")
        if not any(authorization == f"Bearer {n.access_token}" for n in self.numbers.values()):
            return _graph_error(
                401, 190, "Invalid OAuth access token - Cannot parse access token", subcode=463
            )
        number = self.numbers.get(request.path_params["phone_number_id"])
        # Another account's token does not see this number: Meta says it does not exist.
        if number is None or authorization != f"Bearer {number.access_token}":
            return _graph_error(
                400,
                100,
                f"Unsupported post request. Object with ID "
                f"'{request.path_params['phone_number_id']}' does not exist",
                kind="GraphMethodException",
                subcode=33,
            )
        try:
            body = await request.json()
        except ValueError:
            return _invalid("The request body is not valid JSON")
        problem = _problem(body)
        if problem is not None:
            return _invalid(problem)
        wa_id = re.sub(r"\D", "", body["to"])
        message: Record = {
            "id": _wamid(),
            "phone_number_id": number.phone_number_id,
            "wa_id": wa_id,
            "to": body["to"],
            "type": body["type"],
            "received_at": time.time(),
            "biz_opaque_callback_data": body.get("biz_opaque_callback_data"),
            "request": body,
        }
        self._keep(message)
        if self.auto_status:
            # After the API's answer: the window's timer fires on a later turn of the loop.
            self._after_accept(message)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": wa_id}],
                "messages": [{"id": message["id"], "message_status": "accepted"}],
            }
        )

    def routes(self) -> Sequence[BaseRoute]:
        async def inbound(request: Request) -> Response:
            body = await request.json()
            to = body.get("to")
            wamid = await self.send_inbound(
                str(body["from"]), str(body["text"]), to=None if to is None else str(to)
            )
            return JSONResponse({"id": wamid})

        async def subscribe(request: Request) -> Response:
            return JSONResponse({"verified": await self.verify_subscription()})

        return [
            Route("/_peer/inbound", inbound, methods=["POST"]),
            Route("/_peer/subscribe", subscribe, methods=["POST"]),
            Route("/{version}/{phone_number_id}/messages", self._messages, methods=["POST"]),
        ]


def _problem(body: Any) -> str | None:
    """What is wrong with a send request, in the Graph API's words; None when it is fine."""
    if not isinstance(body, dict):
        return "The parameter messaging_product is required."
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required."
    if not isinstance(body.get("to"), str) or not re.fullmatch(r"\+?\d{7,15}", body["to"]):
        return "The parameter to is required."
    kind = body.get("type", "text")
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str):
            return "The parameter text['body'] is required."
        return None
    if kind == "template":
        template = body.get("template")
        if not isinstance(template, dict) or not template.get("name"):
            return "The parameter template['name'] is required."
        language = template.get("language")
        if not isinstance(language, dict) or not language.get("code"):
            return "The parameter template['language']['code'] is required."
        for component in template.get("components", []):
            for parameter in component.get("parameters", []):
                if parameter.get("type") == "text" and not isinstance(parameter.get("text"), str):
                    return "The parameter text is required."
        return None
    return f"Param type must be one of {{text, template}} - got {kind!r}."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8031)
    parser.add_argument("--access-token", default="dev-whatsapp-token")
    parser.add_argument("--app-secret", default="dev-whatsapp-app-secret")
    parser.add_argument("--phone-number-id", default="106540352242922")
    parser.add_argument("--verify-token", default="dev-whatsapp-verify-token")
    parser.add_argument("--webhook-url", default=None, help="the app's webhook callback URL")
    parser.add_argument(
        "--accounts-file", default=None, help="also serve the tenants' numbers in this file"
    )


def serve(args: argparse.Namespace) -> None:
    peer = WhatsAppCloudPeer(
        args.port,
        access_token=args.access_token,
        app_secret=args.app_secret,
        phone_number_id=args.phone_number_id,
        verify_token=args.verify_token,
        webhook_url=args.webhook_url,
    )
    for number in tenant_accounts(args.accounts_file, "whatsapp"):
        peer.add_number(
            number["phone_number_id"],
            access_token=number["access_token"],
            app_secret=number["app_secret"],
        )
    peer.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="recupero-whatsapp-peer", description=__doc__)
    add_arguments(parser)
    serve(parser.parse_args(argv))


if __name__ == "__main__":
    main()

"""A local Twilio: the Messages and Calls resources of the 2010-04-01 REST API, and signed callbacks.

API (as Twilio documents it), HTTP Basic auth with the Account SID and Auth Token, form bodies:
    POST /2010-04-01/Accounts/{AccountSid}/Messages.json  To, From, Body, StatusCallback
    POST /2010-04-01/Accounts/{AccountSid}/Calls.json     To, From, Twiml, StatusCallback
        201 with the resource's JSON; errors {"code", "message", "more_info", "status"}
Callbacks are form posts signed `X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the Auth Token,
of the full URL followed by every POST parameter, sorted by name, as name + value.
One peer may serve several accounts (`add_account`: tenants' own), each with its Auth Token and
number; callbacks carry the AccountSid they are about and are signed with its token.
Message status callbacks go to the message's StatusCallback (`sent`, then `delivered`); inbound
SMS to `sms_url` (the number's messaging webhook); a callee's key presses to the call's
`<Gather action>`, then the call's `completed` to its StatusCallback.

Control API for tests and the demo:
    GET/DELETE /_peer/requests, GET /_peer/callbacks, POST /_peer/outage {"status", "seconds"}
    POST /_peer/messages/{sid}/status {"status", "error_code"?}  -> that status callback
    POST /_peer/inbound {"from", "body", "to"?}                   -> an inbound SMS (to a number)
    POST /_peer/calls/{sid}/digits {"digits"}                     -> the callee presses keys
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from recupero_devstack.providers._peer import Outage, ProviderPeer, Record, tenant_accounts

__all__ = ["TwilioPeer", "add_arguments", "main", "serve", "signature"]

API_VERSION = "2010-04-01"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """The `X-Twilio-Signature` Twilio puts on a request to `url` with these POST parameters."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _now() -> str:
    return formatdate(usegmt=True)


@dataclass(frozen=True)
class Account:
    """One Twilio account: its SID and Auth Token, its number, that number's SMS webhook."""

    account_sid: str
    auth_token: str
    phone_number: str
    sms_url: str | None = None


def gather_action(twiml: str) -> str | None:
    """The URL a `<Gather>` in this TwiML posts the pressed digits to."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return None
    gather = root.find("Gather")
    return None if gather is None else gather.get("action")


class TwilioPeer(ProviderPeer):
    name = "twilio"

    def __init__(
        self,
        port: int,
        *,
        account_sid: str,
        auth_token: str,
        phone_number: str,
        sms_url: str | None = None,
        auto_status: bool = True,
        auto_digits: str | None = None,
    ) -> None:
        super().__init__(port)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.phone_number = phone_number
        self.sms_url = sms_url
        self.auto_status = auto_status
        # The demo's callee presses this key on every call; tests press keys themselves.
        self.auto_digits = auto_digits
        self.accounts: dict[str, Account] = {}
        self.add_account(account_sid, auth_token, phone_number, sms_url)

    def add_account(
        self, account_sid: str, auth_token: str, phone_number: str, sms_url: str | None = None
    ) -> None:
        """Serve another account (a tenant's own), with its own token and number."""
        self.accounts[account_sid] = Account(account_sid, auth_token, phone_number, sms_url)

    async def _send_callback(self, url: str, params: dict[str, str], kind: str) -> None:
        # Signed with the Auth Token of the account the callback is about.
        auth_token = self.accounts[params["AccountSid"]].auth_token
        await self._post_callback(
            url,
            content=urlencode(params).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature(auth_token, url, params),
            },
            record={"kind": kind, "params": params},
        )

    def status_params(
        self, message: Record, status: str, error_code: int | None = None
    ) -> dict[str, str]:
        params = {
            "AccountSid": message["account_sid"],
            "ApiVersion": API_VERSION,
            "From": message["from"],
            "To": message["to"],
            "MessageSid": message["sid"],
            "SmsSid": message["sid"],
            "MessageStatus": status,
            "SmsStatus": status,
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return params

    async def send_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        message = self._find("sid", sid)
        if message is None or message["kind"] != "message":
            raise LookupError(f"no message {sid}")
        if message["status_callback"] is None:
            raise LookupError(f"message {sid} has no StatusCallback")
        await self._send_callback(
            message["status_callback"],
            self.status_params(message, status, error_code),
            f"status:{status}",
        )

    async def send_inbound(self, sender: str, body: str, to: str | None = None) -> str:
        """`sender` texts our number `to` (the first account's by default)."""
        to = to or self.phone_number
        account = next((a for a in self.accounts.values() if a.phone_number == to), None)
        if account is None:
            raise LookupError(f"no account has the number {to}")
        if account.sms_url is None:
            raise LookupError("the number has no messaging webhook (sms_url)")
        sid = _sid("SM")
        params = {
            "AccountSid": account.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "From": sender,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
        }
        await self._send_callback(account.sms_url, params, "inbound")
        return sid

    async def press(self, call_sid: str, digits: str) -> str | None:
        """The callee presses keys: the Gather's action gets them; returns the TwiML answered."""
        call = self._find("sid", call_sid)
        if call is None or call["kind"] != "call":
            raise LookupError(f"no call {call_sid}")
        action = gather_action(call["twiml"])
        if action is None:
            raise LookupError(f"call {call_sid} has no <Gather action>")
        params = {
            "AccountSid": call["account_sid"],
            "ApiVersion": API_VERSION,
            "CallSid": call_sid,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "From": call["from"],
            "To": call["to"],
            "Digits": digits,
            "FinishedOnKey": "",
        }
        await self._send_callback(action, params, "gather")
        answered = self.callbacks()[-1].get("response")
        if call["status_callback"] is not None:
            completed = params | {"CallStatus": "completed", "CallDuration": "23"}
            del completed["Digits"], completed["FinishedOnKey"]
            await self._send_callback(call["status_callback"], completed, "status:completed")
        return answered if isinstance(answered, str) else None

    def outage_response(self, outage: Outage) -> Response:
        if outage.status == 429:
            return _error(429, 20429, "Too Many Requests")
        return _error(outage.status, 20500, "Internal Server Error")

    async def _authorised(self, request: Request) -> Response | dict[str, str]:
        """The form parameters, or the error Twilio would answer."""
        refused = self._outage_reply()
        if refused is not None:
            return refused
        authenticated = next(
            (
                account
                for account in self.accounts.values()
                if request.headers.get("authorization")
                == "Basic "
                + base64.b64encode(f"{account.account_sid}:{account.auth_token}".encode()).decode()
            ),
            None,
        )
        if authenticated is None:
            return _error(401, 20003, "Authenticate")
        if request.path_params["account_sid"] != authenticated.account_sid:
            return _error(
                404,
                20404,
                f"The requested resource /{API_VERSION}/Accounts/"
                f"{request.path_params['account_sid']} was not found",
            )
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))

    def _resource(
        self, kind: str, sid: str, params: dict[str, str], account_sid: str
    ) -> dict[str, Any]:
        collection = "Messages" if kind == "message" else "Calls"
        now = _now()
        return {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "from": params.get("From", self.accounts[account_sid].phone_number),
            "sid": sid,
            "status": "queued",
            "to": params["To"],
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/{collection}/{sid}.json",
        }

    async def _messages(self, request: Request) -> Response:
        params = await self._authorised(request)
        if isinstance(params, Response):
            return params
        to, sender, body = params.get("To"), params.get("From"), params.get("Body")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not params.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return _error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        sid = _sid("SM")
        account_sid = request.path_params["account_sid"]
        resource = self._resource("message", sid, params, account_sid) | {
            "body": body,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(1 + (len(body) - 1) // 153 if len(body) > 160 else 1),
            "price": None,
            "price_unit": "USD",
            "subresource_uris": {"media": resource_media(account_sid, sid)},
        }
        message: Record = {
            "kind": "message",
            "account_sid": account_sid,
            "sid": sid,
            "to": to,
            "from": resource["from"],
            "body": body,
            "status_callback": params.get("StatusCallback"),
            "received_at": time.time(),
            "params": params,
        }
        self._keep(message)
        if self.auto_status and message["status_callback"] is not None:
            self._in_background(self._deliver(message))
        return JSONResponse(resource, status_code=201)

    async def _deliver(self, message: Record) -> None:
        for status in ("sent", "delivered"):
            await self.send_status(message["sid"], status)

    async def _calls(self, request: Request) -> Response:
        params = await self._authorised(request)
        if isinstance(params, Response):
            return params
        to, sender, twiml = params.get("To"), params.get("From"), params.get("Twiml")
        if not to:
            return _error(400, 21201, "No 'To' number is specified")
        if not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender:
            return _error(400, 21213, "No 'From' number is specified")
        if not twiml and not params.get("Url"):
            return _error(400, 21205, "Url parameter is required.")
        if twiml:
            try:
                ET.fromstring(twiml)
            except ET.ParseError:
                return _error(400, 12100, "Document parse failure")
        sid = _sid("CA")
        account_sid = request.path_params["account_sid"]
        resource = self._resource("call", sid, params, account_sid) | {
            "answered_by": None,
            "caller_name": None,
            "duration": None,
            "end_time": None,
            "parent_call_sid": None,
            "price": None,
            "price_unit": "USD",
            "start_time": None,
        }
        call: Record = {
            "kind": "call",
            "account_sid": account_sid,
            "sid": sid,
            "to": to,
            "from": sender,
            "twiml": twiml or "",
            "status_callback": params.get("StatusCallback"),
            "received_at": time.time(),
            "params": params,
        }
        self._keep(call)
        if self.auto_digits is not None:
            self._in_background(self.press(sid, self.auto_digits))
        return JSONResponse(resource, status_code=201)

    def routes(self) -> Sequence[BaseRoute]:
        async def inbound(request: Request) -> Response:
            body = await request.json()
            try:
                to = body.get("to")
                sid = await self.send_inbound(
                    str(body["from"]), str(body["body"]), None if to is None else str(to)
                )
            except LookupError as exc:
                return JSONResponse({"error": str(exc)}, 409)
            return JSONResponse({"sid": sid})

        async def digits(request: Request) -> Response:
            body = await request.json()
            try:
                answered = await self.press(request.path_params["sid"], str(body["digits"]))
            except LookupError as exc:
                return JSONResponse({"error": str(exc)}, 404)
            return JSONResponse({"twiml": answered})

        base = f"/{API_VERSION}/Accounts/{{account_sid}}"
        return [
            Route("/_peer/inbound", inbound, methods=["POST"]),
            Route("/_peer/calls/{sid}/digits", digits, methods=["POST"]),
            Route(f"{base}/Messages.json", self._messages, methods=["POST"]),
            Route(f"{base}/Calls.json", self._calls, methods=["POST"]),
        ]


def resource_media(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8032)
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="dev-twilio-auth-token")
    parser.add_argument("--phone-number", default="+15005550006")
    parser.add_argument("--sms-url", default=None, help="the number's inbound SMS webhook")
    parser.add_argument("--auto-digits", default=None, help="key every callee presses")
    parser.add_argument(
        "--accounts-file",
        default=None,
        help="also serve the tenants' accounts in this file (their SMS to --sms-url)",
    )


def serve(args: argparse.Namespace) -> None:
    peer = TwilioPeer(
        args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        phone_number=args.phone_number,
        sms_url=args.sms_url,
        auto_digits=args.auto_digits,
    )
    for account in tenant_accounts(args.accounts_file, "twilio"):
        peer.add_account(
            account["account_sid"], account["auth_token"], account["from_number"], args.sms_url
        )
    peer.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="recupero-twilio-peer", description=__doc__)
    add_arguments(parser)
    serve(parser.parse_args(argv))


if __name__ == "__main__":
    main()

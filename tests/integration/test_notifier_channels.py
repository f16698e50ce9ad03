"""The notifier on real PostgreSQL and Kafka against the local WhatsApp Cloud API and Twilio peers,
which speak the providers' HTTP APIs and send signed callbacks to the notifier's HTTP server.

Each channel reaches its provider once per action and statuses come back as events; forged, stale
and replayed webhooks are refused and change nothing; a provider answering 500 and then 429 gets
every message exactly once when it recovers, even after a full minute during which the notifier
parked every delivery in PostgreSQL and was restarted; a debtor's "BAJA" becomes an opt-out event;
pressing 1 on a call registers a promise.
"""

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from recupero_devstack._util import free_port
from recupero_devstack.providers import twilio as twilio_peer
from recupero_devstack.providers import whatsapp as whatsapp_peer
from recupero_devstack.providers.twilio import TwilioPeer
from recupero_devstack.providers.whatsapp import WhatsAppCloudPeer
from recupero_events import (
    ActionDue,
    Channel,
    ContactDetails,
    EventPayload,
    MessageSent,
    MessageStatus,
    MessageStatusChanged,
    Money,
    PromiseRegistered,
    Topic,
    encode,
)
from recupero_notifier.adapters.tables import deliveries
from recupero_notifier.adapters.whatsapp import PROVIDER as WHATSAPP_PROVIDER
from recupero_notifier.settings import NotifierSettings
from recupero_runtime.db import create_engine
from tests.kafka_reading import EventStream
from tests.notifier_debtors import known_debtor, new_phone
from tests.notifier_serving import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    serving,
)

pytestmark = pytest.mark.integration

TENANT = "demo-bank"
TIMEOUT_S = 60
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
OUR_NUMBER = "+15005550006"
# A tenant with provider accounts of its own.
NORTE = "banco-norte"
NORTE_NUMBER_ID = "209871234567890"
NORTE_TOKEN = "norte-access-token"
NORTE_APP_SECRET = "norte-app-secret"
NORTE_SID = "AC" + "2" * 32
NORTE_AUTH_TOKEN = "norte-auth-token"
NORTE_NUMBER = "+5215550001111"


@pytest.fixture
def twilio(notifier_port: int) -> Iterator[TwilioPeer]:
    with TwilioPeer(
        free_port(),
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        phone_number=OUR_NUMBER,
        sms_url=f"http://127.0.0.1:{notifier_port}/webhooks/twilio/inbound",
    ) as peer:
        yield peer


@pytest.fixture
def settings(
    database_url: str,
    kafka_bootstrap: str,
    notifier_port: int,
    whatsapp: WhatsAppCloudPeer,
    twilio: TwilioPeer,
) -> NotifierSettings:
    return NotifierSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        http_port=notifier_port,
        public_url=f"http://127.0.0.1:{notifier_port}",
        whatsapp_api_url=whatsapp.url,
        whatsapp_phone_number_id=PHONE_NUMBER_ID,
        whatsapp_access_token=ACCESS_TOKEN,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        twilio_api_url=twilio.url,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from_number=OUR_NUMBER,
        provider_retry_seconds=2,
    )


class Events(EventStream):
    """The notifier's events on Kafka."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(
            bootstrap, Topic.MESSAGE_SENT, Topic.MESSAGE_STATUS_CHANGED, timeout_s=TIMEOUT_S
        )

    def of(self, action_id: UUID) -> list[EventPayload]:
        return [p for p in self.payloads if getattr(p, "action_id", None) == action_id]


def sent(action_id: UUID) -> Callable[[EventPayload], bool]:
    return lambda p: isinstance(p, MessageSent) and p.action_id == action_id


def status(action_id: UUID, wanted: MessageStatus) -> Callable[[EventPayload], bool]:
    return lambda p: (
        isinstance(p, MessageStatusChanged) and p.action_id == action_id and p.status is wanted
    )


def action_due(debtor_id: str, channel: Channel, phone: str = "+5215512345678") -> ActionDue:
    return ActionDue(
        tenant_id=TENANT,
        debtor_id=debtor_id,
        action_id=uuid4(),
        channel=channel,
        template="first-reminder",
        strategy="default/1",
        scheduled_for=datetime.now(UTC),
        contact=ContactDetails(
            name="Ana Pérez",
            email="ana@example.com",
            phone=phone,
            country="MX",
            time_zone="America/Mexico_City",
        ),
        balance=Money(amount_minor=1_234_567, currency="MXN"),
        days_past_due=15,
        oldest_due_on=date(2025, 3, 5),
    )


async def produce(producer: AIOKafkaProducer, payload: ActionDue) -> str:
    event = encode(payload, source="recupero/orchestrator")
    await producer.send_and_wait(event.topic, event.value, key=event.key, headers=event.headers)
    return event.event_id


def requests_for(peer: WhatsAppCloudPeer | TwilioPeer, action_id: UUID) -> list[dict[str, Any]]:
    """What the provider received for one action (its id travels in callback data or URLs)."""
    found = []
    for record in peer.received():
        if record.get("biz_opaque_callback_data") == str(action_id):
            found.append(record)
        callback = record.get("status_callback") or ""
        if parse_qs(urlsplit(callback).query).get("action_id") == [str(action_id)]:
            found.append(record)
    return found


def norte_number(**extra: str) -> dict[str, str]:
    """banco-norte's own WhatsApp Business number, as the accounts file gives it."""
    return {
        "phone_number_id": NORTE_NUMBER_ID,
        "access_token": NORTE_TOKEN,
        "app_secret": NORTE_APP_SECRET,
        **extra,
    }


def with_accounts(
    settings: NotifierSettings, folder: Path, tenants: dict[str, Any]
) -> NotifierSettings:
    """The settings with a `RECUPERO_PROVIDER_ACCOUNTS_FILE` giving these tenants' accounts."""
    accounts_file = folder / "provider-accounts.json"
    accounts_file.write_text(json.dumps({"tenants": tenants}))
    return settings.model_copy(update={"provider_accounts_file": accounts_file})


async def test_every_channel_reaches_its_provider_and_statuses_come_back(
    settings: NotifierSettings,
    whatsapp: WhatsAppCloudPeer,
    twilio: TwilioPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    debtor = f"C-{uuid4().hex[:8]}"
    by_whatsapp = action_due(debtor, Channel.WHATSAPP)
    by_sms = action_due(debtor, Channel.SMS)
    by_call = action_due(debtor, Channel.IVR)

    async with serving(settings), Events(kafka_bootstrap) as events:
        assert await asyncio.to_thread(whatsapp.call, whatsapp.verify_subscription)
        for action in (by_whatsapp, by_sms, by_call):
            await produce(producer, action)

        whatsapp_sent = await events.wait_for(sent(by_whatsapp.action_id))
        await events.wait_for(status(by_whatsapp.action_id, MessageStatus.DELIVERED))
        sms_sent = await events.wait_for(sent(by_sms.action_id))
        await events.wait_for(status(by_sms.action_id, MessageStatus.DELIVERED))
        call_sent = await events.wait_for(sent(by_call.action_id))

        assert isinstance(whatsapp_sent, MessageSent)
        assert whatsapp_sent.provider == "whatsapp-cloud"
        assert whatsapp_sent.provider_message_id.startswith("wamid.")
        [request] = requests_for(whatsapp, by_whatsapp.action_id)
        assert request["request"]["to"] == "5215512345678"
        assert request["request"]["template"]["name"] == "first_reminder"
        assert request["request"]["template"]["language"] == {"code": "es_MX"}

        assert isinstance(sms_sent, MessageSent)
        assert sms_sent.provider == "twilio"
        [sms] = requests_for(twilio, by_sms.action_id)
        assert sms["sid"] == sms_sent.provider_message_id
        assert "$12,345.67 MXN" in sms["body"]
        assert sms["from"] == OUR_NUMBER

        assert isinstance(call_sent, MessageSent)
        [call] = requests_for(twilio, by_call.action_id)
        assert '<Say language="es-MX">Hola, Ana Pérez.' in call["twiml"]
        assert '<Gather numDigits="1"' in call["twiml"]
        answered = await asyncio.to_thread(
            twilio.call, lambda: twilio.press(call_sent.provider_message_id, "2")
        )
        assert answered is not None and "Un asesor se comunicará con usted" in answered
        replied = await events.wait_for(status(by_call.action_id, MessageStatus.REPLIED))
        assert isinstance(replied, MessageStatusChanged)
        assert replied.detail == "ivr 2: talk_to_agent"
        await events.wait_for(status(by_call.action_id, MessageStatus.DELIVERED))
        await events.settle(1)

    for action in (by_whatsapp, by_sms, by_call):
        assert sum(isinstance(p, MessageSent) for p in events.of(action.action_id)) == 1


async def test_an_argentine_debtor_hears_the_call_and_its_answer_with_vos(
    settings: NotifierSettings,
    twilio: TwilioPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    mexican = action_due(f"C-{uuid4().hex[:8]}", Channel.IVR, new_phone())
    by_call = mexican.model_copy(
        update={
            "contact": mexican.contact.model_copy(
                update={
                    "country": "AR",
                    "time_zone": "America/Argentina/Buenos_Aires",
                    "locale": "es-AR",
                }
            ),
            "balance": Money(amount_minor=1_234_567, currency="ARS"),
        }
    )

    async with serving(settings), Events(kafka_bootstrap) as events:
        await produce(producer, by_call)
        call = await events.wait_for(sent(by_call.action_id))
        assert isinstance(call, MessageSent)
        answered = await asyncio.to_thread(
            twilio.call, lambda: twilio.press(call.provider_message_id, "2")
        )
        await events.wait_for(status(by_call.action_id, MessageStatus.REPLIED))

    [placed] = requests_for(twilio, by_call.action_id)
    assert "marcá 1" in placed["twiml"] and "marque" not in placed["twiml"]
    assert answered is not None and "Un asesor se va a comunicar con vos" in answered
    assert "usted" not in answered


async def test_pressing_1_on_a_call_registers_a_promise_of_the_balance_once(
    settings: NotifierSettings,
    twilio: TwilioPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    debtor, phone = f"C-{uuid4().hex[:8]}", new_phone()
    by_call = action_due(debtor, Channel.IVR, phone)
    # The policy's latest date, from the debtor's today in their time zone.
    promised_on = datetime.now(ZoneInfo("America/Mexico_City")).date() + timedelta(
        days=settings.chatbot_max_promise_days
    )

    async with (
        serving(settings),
        EventStream(kafka_bootstrap, Topic.PROMISE_REGISTERED, timeout_s=TIMEOUT_S) as promises,
        Events(kafka_bootstrap) as events,
        httpx.AsyncClient() as http,
    ):
        await known_debtor(kafka_bootstrap, settings.database_url, debtor, phone, TENANT)
        await produce(producer, by_call)
        call = await events.wait_for(sent(by_call.action_id))
        assert isinstance(call, MessageSent)

        answered = await asyncio.to_thread(
            twilio.call, lambda: twilio.press(call.provider_message_id, "1")
        )
        promise = await promises.wait_for(
            lambda p: isinstance(p, PromiseRegistered) and p.debtor_id == debtor
        )
        # Twilio retries a gather it got no answer to: the same signed request, refused.
        [gather] = [c for c in twilio.callbacks() if c["kind"] == "gather"]
        again = await http.post(
            gather["url"],
            data=gather["params"],
            headers={
                "X-Twilio-Signature": twilio_peer.signature(
                    AUTH_TOKEN, gather["url"], gather["params"]
                )
            },
        )
        await events.wait_for(status(by_call.action_id, MessageStatus.DELIVERED))
        await promises.settle(1)
        await events.settle()

    assert again.status_code == 409
    assert isinstance(promise, PromiseRegistered)
    assert (promise.tenant_id, promise.source) == (TENANT, "ivr")
    # The balance as the notifier knows it (`debt-imported`), not the action's.
    assert promise.amount == Money(amount_minor=1_234_567, currency="MXN")
    assert promise.promised_on == promised_on
    spoken_date = f"{promised_on.day} de "
    assert answered is not None
    assert "Registramos su promesa de pagar $12,345.67 MXN a más tardar el " in answered
    assert spoken_date in answered and str(promised_on.year) in answered
    assert [p for p in promises.payloads if getattr(p, "debtor_id", None) == debtor] == [promise]
    # A promise, not a reply: the orchestrator pauses the strategy instead of calling an agent.
    assert not any(status(by_call.action_id, MessageStatus.REPLIED)(p) for p in events.payloads)


async def test_each_tenant_sends_from_its_own_accounts_and_only_its_secrets_verify_them(
    settings: NotifierSettings,
    whatsapp: WhatsAppCloudPeer,
    twilio: TwilioPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    notifier_port: int,
    tmp_path: Path,
) -> None:
    # banco-norte has its own WhatsApp Business number and Twilio account; demo-bank uses the
    # default ones from the settings.
    whatsapp.add_number(NORTE_NUMBER_ID, access_token=NORTE_TOKEN, app_secret=NORTE_APP_SECRET)
    twilio.add_account(
        NORTE_SID,
        NORTE_AUTH_TOKEN,
        NORTE_NUMBER,
        sms_url=f"http://127.0.0.1:{notifier_port}/webhooks/twilio/inbound",
    )
    norte_twilio = {
        "account_sid": NORTE_SID,
        "auth_token": NORTE_AUTH_TOKEN,
        "from_number": NORTE_NUMBER,
    }
    accounts = {NORTE: {"whatsapp": norte_number(), "twilio": norte_twilio}}
    settings = with_accounts(settings, tmp_path, accounts)
    debtor = f"C-{uuid4().hex[:8]}"
    demo_whatsapp = action_due(debtor, Channel.WHATSAPP, new_phone())
    demo_sms = action_due(debtor, Channel.SMS, new_phone())
    norte_whatsapp = action_due(debtor, Channel.WHATSAPP, new_phone()).model_copy(
        update={"tenant_id": NORTE}
    )
    norte_sms = action_due(debtor, Channel.SMS, new_phone()).model_copy(update={"tenant_id": NORTE})
    actions = (demo_whatsapp, demo_sms, norte_whatsapp, norte_sms)

    async with (
        serving(settings) as url,
        Events(kafka_bootstrap) as events,
        httpx.AsyncClient() as http,
    ):
        for action in actions:
            await produce(producer, action)
        # Delivered: each account's callbacks were verified with that account's secret.
        for action in actions:
            await events.wait_for(status(action.action_id, MessageStatus.DELIVERED))

        [demo_message] = requests_for(whatsapp, demo_whatsapp.action_id)
        [norte_message] = requests_for(whatsapp, norte_whatsapp.action_id)
        [demo_text] = requests_for(twilio, demo_sms.action_id)
        [norte_text] = requests_for(twilio, norte_sms.action_id)

        def signed(body: bytes, secret: str) -> dict[str, str]:
            return {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": whatsapp_peer.signature(secret, body),
            }

        # A read receipt of banco-norte's message, addressed to its number: demo-bank's app
        # secret does not verify it; banco-norte's does.
        norte_read = whatsapp.webhook_body(
            whatsapp.status_value(norte_message, "read"), NORTE_NUMBER_ID
        )
        cross_signed = await http.post(
            f"{url}/webhooks/whatsapp", content=norte_read, headers=signed(norte_read, APP_SECRET)
        )
        # Addressed to demo-bank's number and signed with its secret, but about banco-norte's
        # message: verified, and changes nothing.
        smuggled = whatsapp.webhook_body(whatsapp.status_value(norte_message, "failed", 131050))
        smuggled_answer = await http.post(
            f"{url}/webhooks/whatsapp", content=smuggled, headers=signed(smuggled, APP_SECRET)
        )
        genuine = await http.post(
            f"{url}/webhooks/whatsapp",
            content=norte_read,
            headers=signed(norte_read, NORTE_APP_SECRET),
        )
        assert (cross_signed.status_code, genuine.status_code) == (401, 200)
        assert smuggled_answer.status_code == 200

        # Twilio: banco-norte's delivered callback re-signed with demo-bank's token is refused.
        [delivered] = [
            c
            for c in twilio.callbacks()
            if c["kind"] == "status:delivered" and c["params"]["MessageSid"] == norte_text["sid"]
        ]
        failed = {**delivered["params"], "MessageStatus": "failed", "ErrorCode": "30003"}
        forged = await http.post(
            delivered["url"],
            data=failed,
            headers={
                "X-Twilio-Signature": twilio_peer.signature(AUTH_TOKEN, delivered["url"], failed)
            },
        )
        assert forged.status_code == 401
        await events.wait_for(status(norte_whatsapp.action_id, MessageStatus.READ))
        await events.settle(1)

    # Each tenant's messages left from its own account and number.
    assert demo_message["phone_number_id"] == PHONE_NUMBER_ID
    assert norte_message["phone_number_id"] == NORTE_NUMBER_ID
    assert (demo_text["account_sid"], demo_text["from"]) == (ACCOUNT_SID, OUR_NUMBER)
    assert (norte_text["account_sid"], norte_text["from"]) == (NORTE_SID, NORTE_NUMBER)
    norte_statuses = [
        p.status
        for p in events.of(norte_whatsapp.action_id) + events.of(norte_sms.action_id)
        if isinstance(p, MessageStatusChanged)
    ]
    assert sorted(norte_statuses) == sorted(
        [MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.DELIVERED]
    )
    for action in actions:
        assert sum(isinstance(p, MessageSent) for p in events.of(action.action_id)) == 1


async def test_the_subscription_handshake_accepts_the_verify_token_of_any_tenants_app(
    settings: NotifierSettings, tmp_path: Path
) -> None:
    # Meta runs the GET handshake per app: banco-norte's and banco-sur's apps each subscribe with
    # their own verify token, the default app with the settings' one.
    sur_number_id, sur_token = "309871234567890", "sur-verify-token"
    norte_token = "norte-verify-token"
    sur_whatsapp = {
        "phone_number_id": sur_number_id,
        "access_token": "sur-access-token",
        "app_secret": "sur-app-secret",
        "verify_token": sur_token,
    }
    accounts = {
        NORTE: {"whatsapp": norte_number(verify_token=norte_token)},
        "banco-sur": {"whatsapp": sur_whatsapp},
    }
    settings = with_accounts(settings, tmp_path, accounts)

    async with serving(settings) as url, httpx.AsyncClient() as http:

        async def handshake(token: str, mode: str = "subscribe") -> tuple[int, str]:
            response = await http.get(
                f"{url}/webhooks/whatsapp",
                params={"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"},
            )
            return response.status_code, response.text

        for token in (norte_token, sur_token, VERIFY_TOKEN):
            assert await handshake(token) == (200, "1158201444")
        wrong = await handshake("norte-verify-tokeN")
        empty = await handshake("")
        not_subscribe = await handshake(sur_token, mode="unsubscribe")
    assert wrong[0] == empty[0] == not_subscribe[0] == 403
    assert "1158201444" not in wrong[1] + empty[1] + not_subscribe[1]


async def test_forged_stale_and_replayed_webhooks_are_refused_and_change_nothing(
    settings: NotifierSettings,
    whatsapp: WhatsAppCloudPeer,
    twilio: TwilioPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    debtor = f"C-{uuid4().hex[:8]}"
    by_whatsapp = action_due(debtor, Channel.WHATSAPP)
    by_sms = action_due(debtor, Channel.SMS)

    async with (
        serving(settings) as url,
        Events(kafka_bootstrap) as events,
        httpx.AsyncClient() as http,
    ):
        await produce(producer, by_whatsapp)
        await produce(producer, by_sms)
        await events.wait_for(status(by_whatsapp.action_id, MessageStatus.DELIVERED))
        await events.wait_for(status(by_sms.action_id, MessageStatus.DELIVERED))
        [message] = requests_for(whatsapp, by_whatsapp.action_id)

        read = whatsapp.webhook_body(whatsapp.status_value(message, "read"))
        stale_value = whatsapp.status_value(message, "read")
        stale_value["statuses"][0]["timestamp"] = str(int(time.time()) - 3600)
        stale = whatsapp.webhook_body(stale_value)

        def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
            return {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": whatsapp_peer.signature(secret, body),
            }

        forged = await http.post(
            f"{url}/webhooks/whatsapp", content=read, headers=signed(read, "not-the-secret")
        )
        unsigned = await http.post(
            f"{url}/webhooks/whatsapp", content=read, headers={"Content-Type": "application/json"}
        )
        too_old = await http.post(f"{url}/webhooks/whatsapp", content=stale, headers=signed(stale))
        assert (forged.status_code, unsigned.status_code, too_old.status_code) == (401, 401, 400)
        await events.settle()
        assert not any(
            status(by_whatsapp.action_id, MessageStatus.READ)(p) for p in events.payloads
        )

        genuine = await http.post(f"{url}/webhooks/whatsapp", content=read, headers=signed(read))
        replayed = await http.post(f"{url}/webhooks/whatsapp", content=read, headers=signed(read))
        assert (genuine.status_code, replayed.status_code) == (200, 409)

        # Twilio: a delivered callback it already sent, replayed byte for byte; then forged.
        [delivered] = [
            c
            for c in twilio.callbacks()
            if c["kind"] == "status:delivered" and c["params"]["MessageSid"] == _sid(twilio, by_sms)
        ]
        form = delivered["params"]
        good = twilio_peer.signature(AUTH_TOKEN, delivered["url"], form)
        again = await http.post(delivered["url"], data=form, headers={"X-Twilio-Signature": good})
        failed = {**form, "MessageStatus": "failed", "SmsStatus": "failed", "ErrorCode": "30003"}
        forged_twilio = await http.post(
            delivered["url"], data=failed, headers={"X-Twilio-Signature": good}
        )
        other_action = delivered["url"].replace(str(by_sms.action_id), str(by_whatsapp.action_id))
        moved = await http.post(other_action, data=failed, headers={"X-Twilio-Signature": good})
        assert (again.status_code, forged_twilio.status_code, moved.status_code) == (409, 401, 401)
        await events.settle()

    assert [type(p).__name__ for p in events.of(by_whatsapp.action_id)].count("MessageSent") == 1
    reads = [
        p for p in events.of(by_whatsapp.action_id) if status(p.action_id, MessageStatus.READ)(p)
    ]  # type: ignore[attr-defined]
    assert len(reads) == 1
    sms_statuses = [p for p in events.of(by_sms.action_id) if isinstance(p, MessageStatusChanged)]
    assert [p.status for p in sms_statuses] == [MessageStatus.DELIVERED]


async def test_statuses_that_arrive_before_the_send_is_recorded_settle_each_delivery_once(
    settings: NotifierSettings,
    whatsapp: WhatsAppCloudPeer,
    database_url: str,
    kafka_bootstrap: str,
) -> None:
    """Meta's `sent` and `delivered` of two messages in one notification, while the notifier
    still has them `sending` (its batch has not recorded the answers, or it died after the
    request left): each delivery is settled once, one `message-sent` each and their
    `delivered`; the notification replayed changes nothing."""
    unrecorded = [action_due(f"C-{uuid4().hex[:8]}", Channel.WHATSAPP) for _ in range(2)]
    async with (
        serving(settings) as url,
        Events(kafka_bootstrap) as events,
        httpx.AsyncClient() as http,
    ):
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    deliveries.insert(),
                    [
                        {
                            "action_id": action.action_id,
                            "tenant_id": action.tenant_id,
                            "debtor_id": action.debtor_id,
                            "channel": action.channel.value,
                            "template": action.template,
                            "status": "sending",
                            "provider": WHATSAPP_PROVIDER,
                            "recipient": action.contact.phone,
                            "attempts": 1,
                            "first_attempt_at": datetime.now(UTC),
                            "last_attempt_at": datetime.now(UTC),
                        }
                        for action in unrecorded
                    ],
                )
        finally:
            await engine.dispose()
        messages = [
            {
                "id": f"wamid.{action.action_id.hex}",
                "wa_id": "5215512345678",
                "biz_opaque_callback_data": str(action.action_id),
            }
            for action in unrecorded
        ]
        statuses = [
            entry
            for message in messages
            for state in ("sent", "delivered")
            for entry in whatsapp.status_value(message, state)["statuses"]
        ]
        body = whatsapp.webhook_body({"statuses": statuses})
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": whatsapp_peer.signature(APP_SECRET, body),
        }
        first = await http.post(f"{url}/webhooks/whatsapp", content=body, headers=headers)
        replayed = await http.post(f"{url}/webhooks/whatsapp", content=body, headers=headers)
        assert (first.status_code, first.json()) == (200, {"applied": 4, "replayed": 0})
        assert replayed.status_code == 409
        for action in unrecorded:
            await events.wait_for(status(action.action_id, MessageStatus.DELIVERED))
        await events.settle()

    for action, message in zip(unrecorded, messages, strict=True):
        published = events.of(action.action_id)
        [message_sent] = [p for p in published if isinstance(p, MessageSent)]
        assert message_sent.provider_message_id == message["id"]
        assert [p.status for p in published if isinstance(p, MessageStatusChanged)] == [
            MessageStatus.DELIVERED
        ]
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            settled = (
                await connection.execute(
                    select(deliveries.c.action_id, deliveries.c.status, deliveries.c.message_id)
                    .where(deliveries.c.action_id.in_([a.action_id for a in unrecorded]))
                    .order_by(deliveries.c.action_id)
                )
            ).all()
    finally:
        await engine.dispose()
    assert sorted(settled) == sorted(
        (action.action_id, "sent", message["id"])
        for action, message in zip(unrecorded, messages, strict=True)
    )


def _sid(peer: TwilioPeer, action: ActionDue) -> str:
    [record] = requests_for(peer, action.action_id)
    sid: str = record["sid"]
    return sid


async def test_provider_failing_with_500_then_429_gets_every_message_once(
    settings: NotifierSettings,
    twilio: TwilioPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    actions = [action_due(f"C-{uuid4().hex[:8]}", Channel.SMS, new_phone()) for _ in range(12)]

    async with serving(settings), Events(kafka_bootstrap) as events:
        twilio.fail(500, 4)
        for action in actions[:6]:
            await produce(producer, action)
        await asyncio.sleep(4)
        twilio.fail(429, 4)
        for action in actions[6:]:
            await produce(producer, action)
        for action in actions:
            await events.wait_for(sent(action.action_id))
        await events.settle(2)

    for action in actions:
        assert len(requests_for(twilio, action.action_id)) == 1
        assert sum(isinstance(p, MessageSent) for p in events.of(action.action_id)) == 1


OUTAGE_S = 65
RETRY_AFTER_S = 3


async def parked_count(database_url: str, action_ids: list[UUID]) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).where(
                    deliveries.c.action_id.in_(action_ids),
                    deliveries.c.status == "retrying",
                    deliveries.c.parked_action.is_not(None),
                )
            )
        return int(count or 0)
    finally:
        await engine.dispose()


async def test_a_minute_of_500s_and_429s_then_every_message_is_delivered_once(
    settings: NotifierSettings,
    whatsapp: WhatsAppCloudPeer,
    twilio: TwilioPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    settings = settings.model_copy(
        update={
            "provider_retry_seconds": 2,
            "parked_retry_initial_seconds": 2,
            "parked_retry_max_seconds": 10,
            "parked_retry_poll_seconds": 0.5,
        }
    )
    channels = itertools.cycle([Channel.WHATSAPP, Channel.SMS, Channel.IVR])
    actions = [action_due(f"C-{uuid4().hex[:8]}", next(channels), new_phone()) for _ in range(20)]
    ids = [action.action_id for action in actions]
    loop = asyncio.get_running_loop()

    async with Events(kafka_bootstrap) as events:
        whatsapp.fail([500, 429], OUTAGE_S, retry_after=RETRY_AFTER_S)
        twilio.fail([429, 500], OUTAGE_S, retry_after=RETRY_AFTER_S)
        recovered_at = loop.time() + OUTAGE_S
        async with serving(settings):
            for action in actions:
                await produce(producer, action)
            # Every one parked in PostgreSQL while the providers fail.
            async with asyncio.timeout(OUTAGE_S - 10):
                while await parked_count(settings.database_url, ids) < len(actions):
                    await asyncio.sleep(0.5)
        # A restart during the outage: the parked deliveries are only in the database now
        # (their Kafka offsets were committed when they were parked).
        assert loop.time() < recovered_at
        async with serving(settings):
            await asyncio.sleep(recovered_at - loop.time())
            # Nothing got through while the providers were down.
            assert not any(sent(action_id)(p) for p in events.payloads for action_id in ids)
            for action in actions:
                await events.wait_for(sent(action.action_id))
            for action in actions:
                if action.channel is not Channel.IVR:
                    await events.wait_for(status(action.action_id, MessageStatus.DELIVERED))
            await events.settle(2)

    assert loop.time() >= recovered_at
    for action in actions:
        peer = whatsapp if action.channel is Channel.WHATSAPP else twilio
        assert len(requests_for(peer, action.action_id)) == 1, action.channel
        published = events.of(action.action_id)
        assert sum(isinstance(p, MessageSent) for p in published) == 1
    assert await parked_count(settings.database_url, ids) == 0


async def test_redelivered_action_due_causes_one_send(
    settings: NotifierSettings,
    whatsapp: WhatsAppCloudPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    debtor = f"C-{uuid4().hex[:8]}"
    action = action_due(debtor, Channel.WHATSAPP)
    event = encode(action, source="recupero/orchestrator")
    sentinel = action_due(debtor, Channel.WHATSAPP)

    async with serving(settings), Events(kafka_bootstrap) as events:
        for _ in range(2):  # the same event redelivered
            await producer.send_and_wait(
                event.topic, event.value, key=event.key, headers=event.headers
            )
        await produce(producer, action)  # the same action re-emitted under a new event id
        await produce(producer, sentinel)  # same debtor, same partition: handled after those
        await events.wait_for(sent(sentinel.action_id))
        await events.settle(1)

    assert len(requests_for(whatsapp, action.action_id)) == 1
    assert sum(isinstance(p, MessageSent) for p in events.of(action.action_id)) == 1


async def test_baja_on_whatsapp_and_stop_by_sms_are_opt_outs_of_that_channel(
    settings: NotifierSettings,
    whatsapp: WhatsAppCloudPeer,
    twilio: TwilioPeer,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    phone = new_phone()
    debtor = f"C-{uuid4().hex[:8]}"
    by_whatsapp = action_due(debtor, Channel.WHATSAPP, phone)
    by_sms = action_due(debtor, Channel.SMS, phone)

    async with serving(settings), Events(kafka_bootstrap) as events:
        await produce(producer, by_whatsapp)
        await produce(producer, by_sms)
        await events.wait_for(sent(by_whatsapp.action_id))
        await events.wait_for(sent(by_sms.action_id))

        await asyncio.to_thread(
            whatsapp.call, lambda: whatsapp.send_inbound(phone, "¿Cuánto debo?")
        )
        question = await events.wait_for(status(by_whatsapp.action_id, MessageStatus.REPLIED))
        await asyncio.to_thread(whatsapp.call, lambda: whatsapp.send_inbound(phone, "Baja"))
        await asyncio.to_thread(twilio.call, lambda: twilio.send_inbound(phone, "STOP"))
        whatsapp_opt_out = await events.wait_for(
            lambda p: (
                isinstance(p, MessageStatusChanged)
                and p.opt_out
                and p.channel is Channel.WHATSAPP
                and p.debtor_id == debtor
            )
        )
        sms_opt_out = await events.wait_for(
            lambda p: (
                isinstance(p, MessageStatusChanged)
                and p.opt_out
                and p.channel is Channel.SMS
                and p.debtor_id == debtor
            )
        )

    assert isinstance(question, MessageStatusChanged) and not question.opt_out
    assert question.detail == "¿Cuánto debo?"
    assert isinstance(whatsapp_opt_out, MessageStatusChanged)
    assert (whatsapp_opt_out.tenant_id, whatsapp_opt_out.action_id) == (
        TENANT,
        by_whatsapp.action_id,
    )
    assert isinstance(sms_opt_out, MessageStatusChanged)
    assert sms_opt_out.action_id == by_sms.action_id
    assert json.loads(sms_opt_out.model_dump_json())["opt_out"] is True

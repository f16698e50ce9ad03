"""The WhatsApp bot on real PostgreSQL and Kafka against the local WhatsApp Cloud API: a debtor whose
debt the notifier learnt from `debt-imported` writes, gets the menu, and promises to pay
(`promise-registered`) or asks for an agent (the bot falls silent); a restart of the notifier in the
middle of a conversation continues it where it was.
"""

import asyncio
from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from recupero_devstack.providers.whatsapp import WhatsAppCloudPeer
from recupero_events import (
    MessageStatus,
    MessageStatusChanged,
    Money,
    PromiseRegistered,
    Topic,
)
from recupero_notifier.settings import NotifierSettings
from tests.kafka_reading import EventStream
from tests.notifier_debtors import TIME_ZONE, known_debtor, new_phone
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


@pytest.fixture
def settings(
    database_url: str, kafka_bootstrap: str, notifier_port: int, whatsapp: WhatsAppCloudPeer
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
        provider_retry_seconds=2,
        chatbot_max_promise_days=30,
    )


class Events(EventStream):
    """The events the chatbot publishes, on Kafka."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(
            bootstrap, Topic.PROMISE_REGISTERED, Topic.MESSAGE_STATUS_CHANGED, timeout_s=TIMEOUT_S
        )


class Debtor:
    """A debtor on WhatsApp: writes through the local Cloud API, reads what the bot sent back."""

    def __init__(self, peer: WhatsAppCloudPeer, phone: str) -> None:
        self.peer = peer
        self.phone = phone

    def answers(self) -> list[str]:
        wa_id = self.phone.removeprefix("+")
        return [
            str(record["request"]["text"]["body"])
            for record in self.peer.received()
            if record["wa_id"] == wa_id and record["type"] == "text"
        ]

    async def says(self, text: str) -> list[str]:
        """Write, and return what the bot answered to it."""
        before = len(self.answers())
        await asyncio.to_thread(self.peer.call, lambda: self.peer.send_inbound(self.phone, text))
        # The webhook answers after the bot's texts were sent; a short wait covers stragglers.
        await asyncio.sleep(0.2)
        return self.answers()[before:]


async def test_from_first_message_to_a_registered_promise_across_a_restart(
    settings: NotifierSettings, whatsapp: WhatsAppCloudPeer, kafka_bootstrap: str
) -> None:
    debtor_id, phone = f"C-{uuid4().hex[:8]}", new_phone()
    ana = Debtor(whatsapp, phone)
    promised_on = datetime.now(ZoneInfo(TIME_ZONE)).date() + timedelta(days=5)

    async with Events(kafka_bootstrap) as events:
        async with serving(settings):
            await known_debtor(kafka_bootstrap, settings.database_url, debtor_id, phone)
            menu = await ana.says("Hola")
            assert "Hola, Ana" in menu[0] and "$12,345.67 MXN" in menu[0]
            assert "2. Prometer un pago" in menu[-1]
            (ask_amount,) = await ana.says("2")
            assert ask_amount.startswith("¿Cuánto pagará?")
            (too_much,) = await ana.says("20.000,00")
            assert too_much.startswith("El monto no puede ser mayor que su saldo")
            (ask_date,) = await ana.says("1.500,50")
            assert ask_date.startswith("¿Qué día pagará?")

        # The notifier restarts mid-conversation: the debtor continues where they were.
        async with serving(settings):
            (confirm,) = await ana.says(promised_on.strftime("%d/%m/%Y"))
            assert "$1,500.50 MXN" in confirm and promised_on.strftime("%d/%m/%Y") in confirm
            done = await ana.says("SI")
            assert "registramos su promesa" in done[0]

            promise = await events.wait_for(
                lambda p: isinstance(p, PromiseRegistered) and p.debtor_id == debtor_id
            )
            await events.settle(1)

    assert isinstance(promise, PromiseRegistered)
    assert (promise.tenant_id, promise.source) == (TENANT, "chatbot")
    assert promise.amount == Money(amount_minor=150_050, currency="MXN")
    assert promise.promised_on == promised_on
    # One promise, and the conversation was never passed on as a reply.
    assert (
        sum(isinstance(p, PromiseRegistered) and p.debtor_id == debtor_id for p in events.payloads)
        == 1
    )
    assert not any(
        isinstance(p, MessageStatusChanged) and p.debtor_id == debtor_id for p in events.payloads
    )


async def test_asking_for_an_agent_hands_off_and_silences_the_bot(
    settings: NotifierSettings, whatsapp: WhatsAppCloudPeer, kafka_bootstrap: str
) -> None:
    debtor_id, phone = f"C-{uuid4().hex[:8]}", new_phone()
    ana = Debtor(whatsapp, phone)

    async with Events(kafka_bootstrap) as events, serving(settings):
        await known_debtor(kafka_bootstrap, settings.database_url, debtor_id, phone)
        await ana.says("Hola")
        (handed,) = await ana.says("5")
        assert "Un asesor continuará esta conversación" in handed

        hand_off = await events.wait_for(
            lambda p: isinstance(p, MessageStatusChanged) and p.debtor_id == debtor_id
        )
        assert await ana.says("Hola") == []
        assert await ana.says("1") == []
        await events.settle(1)

    assert isinstance(hand_off, MessageStatusChanged)
    assert hand_off.status is MessageStatus.REPLIED and hand_off.tenant_id == TENANT
    assert hand_off.detail is not None and hand_off.detail.startswith("chatbot: hand-off")
    assert not any(
        isinstance(p, PromiseRegistered) and p.debtor_id == debtor_id for p in events.payloads
    )

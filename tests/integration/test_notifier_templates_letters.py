"""Tenant templates and printed letters on real PostgreSQL and Kafka, through the notifier's HTTP
API as a tenant's integration would use it.

A template with a mistyped variable is refused at upload with the part, line and variable, and
the version in use does not change; one tenant never sees nor sends another's template; a preview
renders every part for a debtor the notifier knows; a letter action becomes exactly one stored
PDF, listed for print, whose tracking updates reach the orchestrator as `message-status-changed`.
"""

import io
from datetime import UTC, date, datetime
from uuid import uuid4

import httpx
import pypdf
import pytest
from aiokafka import AIOKafkaProducer

from recupero_devstack._util import free_port
from recupero_devstack.smtp import SmtpSink
from recupero_events import (
    ActionDue,
    Channel,
    ContactDetails,
    MessageSent,
    MessageStatus,
    MessageStatusChanged,
    Money,
    PostalAddress,
    Topic,
    encode,
)
from recupero_notifier.settings import NotifierSettings
from recupero_runtime.auth import hash_api_key
from tests.kafka_reading import EventStream
from tests.notifier_debtors import known_debtor, new_phone
from tests.notifier_serving import serving

pytestmark = pytest.mark.integration

TIMEOUT_S = 60
KEY_A, KEY_B = "key-tenant-a", "key-tenant-b"

LETTER_AR = {
    "subject.txt": "Carta documento de Banco Austral",
    "body.txt": "Hola {{ name }}",
    "body.html": "<p>Hola {{ name }}</p>",
    "short.txt": "Hola {{ name }}",
    "voice.txt": "Hola {{ name }}",
    "letter.txt": "Buenos Aires, {{ today }}\n\nSeñor/a {{ name }}:\nBanco Austral le intima a "
    "pagar {{ amount_due }}, vencido el {{ oldest_due_on }}.\nPague en {{ payment_link }}",
}


@pytest.fixture
def tenants() -> tuple[str, str]:
    suffix = uuid4().hex[:8]
    return f"austral-{suffix}", f"otro-{suffix}"


# The SMTP sink is not used by these tests: the notifier shares its consumer group with every
# test's events, and an email action left on the topic must not hold a partition these tests need.
@pytest.fixture
def settings(
    database_url: str, kafka_bootstrap: str, tenants: tuple[str, str], smtp_sink: SmtpSink
) -> NotifierSettings:
    port = free_port()
    return NotifierSettings(
        smtp_port=smtp_sink.smtp_port,
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        http_port=port,
        public_url=f"http://127.0.0.1:{port}",
        api_keys={hash_api_key(KEY_A): tenants[0], hash_api_key(KEY_B): tenants[1]},
        payment_link_url="https://pagos.example.com/{tenant_id}/{debtor_id}",
    )


def client(url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=TIMEOUT_S
    )


ADDRESS = PostalAddress(
    street_lines=["Av. Corrientes 1234, piso 5 B"],
    city="Ciudad Autónoma de Buenos Aires",
    region="CABA",
    postal_code="C1043AAZ",
    country="AR",
)


def letter_action(
    tenant_id: str, debtor_id: str, address: PostalAddress | None = ADDRESS
) -> ActionDue:
    return ActionDue(
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        action_id=uuid4(),
        channel=Channel.LETTER,
        template="formal-letter",
        strategy="letters/1",
        scheduled_for=datetime(2026, 11, 20, 15, 0, tzinfo=UTC),
        contact=ContactDetails(
            name="Ana Pérez",
            country="AR",
            time_zone="America/Argentina/Buenos_Aires",
            locale="es-AR",
            postal_address=address,
        ),
        balance=Money(amount_minor=1_234_567, currency="ARS"),
        days_past_due=95,
        oldest_due_on=date(2026, 8, 17),
    )


async def publish_actions(bootstrap: str, *actions: ActionDue) -> None:
    """As the orchestrator would: each action on `action-due`, in order."""
    async with AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all") as kafka:
        for action in actions:
            event = encode(action, source="recupero/orchestrator")
            await kafka.send_and_wait(
                event.topic, event.value, key=event.key, headers=event.headers
            )


async def test_a_refused_upload_names_the_mistake_and_keeps_the_version_in_use(
    settings: NotifierSettings, tenants: tuple[str, str]
) -> None:
    async with serving(settings) as url, client(url, KEY_A) as a, client(url, KEY_B) as b:
        first = await a.post("/v1/templates/formal-letter/es-AR", json={"parts": LETTER_AR})
        assert first.status_code == 201, first.text
        assert first.json()["version"] == 1

        typo = dict(LETTER_AR, **{"body.html": "<p>\nHola\n{{ nombre }}</p>"})
        refused = await a.post("/v1/templates/formal-letter/es-AR", json={"parts": typo})

        assert refused.status_code == 422
        [error] = refused.json()["detail"]["errors"]
        assert error["part"] == "body.html"
        assert error["line"] == 3
        assert error["variable"] == "nombre"
        assert error["did_you_mean"] == "name"
        assert "body.html line 3: 'nombre'" in refused.json()["detail"]["message"]
        in_use = (await a.get("/v1/templates/formal-letter/es-AR")).json()
        assert (in_use["origin"], in_use["version"]) == ("tenant", 1)
        assert in_use["parts"]["body.html"] == "<p>Hola {{ name }}</p>"
        listed = (await a.get("/v1/templates")).json()
        assert [(t["name"], t["locale"], t["version"], t["active"]) for t in listed] == [
            ("formal-letter", "es-AR", 1, True)
        ]

        # A language's template serves its locales the tenant has none for.
        language = dict(LETTER_AR, **{"subject.txt": "Aviso para {{ name }}"})
        assert (
            await a.post("/v1/templates/formal-letter/es", json={"parts": language})
        ).status_code == 201
        chilean = (await a.get("/v1/templates/formal-letter/es-CL")).json()
        assert (chilean["locale"], chilean["origin"]) == ("es", "tenant")
        assert (await a.get("/v1/templates/formal-letter/es-AR")).json()["locale"] == "es-AR"

        # The other tenant sees none of it: its list is empty and it gets the shipped template.
        assert (await b.get("/v1/templates")).json() == []
        theirs = (await b.get("/v1/templates/formal-letter/es-AR")).json()
        assert (theirs["origin"], theirs["version"], theirs["locale"]) == ("shipped", 0, "es-AR")
        preview = await b.post("/v1/templates/formal-letter/preview", json={"locale": "es-AR"})
        assert "Banco Austral" not in preview.json()["letter"]

        assert (await a.get("/v1/templates/no-such/es-AR")).status_code == 404
        assert (await a.get("/v1/templates/formal-letter/fr-FR")).status_code == 422
        assert (await httpx.AsyncClient(base_url=url).get("/v1/templates")).status_code == 401


async def test_preview_renders_every_part_for_a_debtor_the_notifier_knows(
    settings: NotifierSettings, tenants: tuple[str, str], kafka_bootstrap: str
) -> None:
    tenant, other = tenants
    debtor = f"C-{uuid4().hex[:8]}"
    async with serving(settings) as url, client(url, KEY_A) as a, client(url, KEY_B) as b:
        await known_debtor(kafka_bootstrap, settings.database_url, debtor, new_phone(), tenant)

        preview = await a.post(
            "/v1/templates/formal-letter/preview", json={"locale": "es-AR", "debtor_id": debtor}
        )

        assert preview.status_code == 200, preview.text
        shown = preview.json()
        assert (shown["origin"], shown["version"]) == ("shipped", 0)
        # The debt the notifier recorded (12,345.67 MXN due 5 March 2026), as Argentines write it.
        assert shown["context"]["amount_due"] == "$12.345,67 MXN"
        assert shown["context"]["oldest_due_on"] == "5/3/2026"
        for part in ("subject", "text", "html", "short", "voice", "letter"):
            assert "$12.345,67 MXN" in shown[part], part
        assert "Ana Pérez" in shown["letter"]
        assert "5 de marzo de 2026" in shown["letter"]
        assert f"https://pagos.example.com/{tenant}/{debtor}" in shown["html"]

        draft = await a.post(
            "/v1/templates/first-reminder/preview",
            json={
                "locale": "en-US",
                "debtor_id": debtor,
                "parts": dict(LETTER_AR, **{"short.txt": "{{ name }} owes {{ amount_due }}"}),
            },
        )
        assert draft.status_code == 200, draft.text
        assert draft.json()["origin"] == "draft"
        assert draft.json()["short"] == "Ana Pérez owes $12,345.67 MXN"
        bad_draft = await a.post(
            "/v1/templates/first-reminder/preview",
            json={"parts": dict(LETTER_AR, **{"voice.txt": "{{ amount }}"})},
        )
        assert bad_draft.status_code == 422
        assert bad_draft.json()["detail"]["errors"][0]["did_you_mean"] == "amount_due"

        sample = await a.post("/v1/templates/first-reminder/preview", json={"locale": "es-CL"})
        assert sample.json()["subject"].startswith("Recordatorio de pago")

        # Another tenant's debtor is unknown to this one.
        assert (
            await b.post("/v1/templates/formal-letter/preview", json={"debtor_id": debtor})
        ).status_code == 404
        del other


async def test_a_letter_action_is_one_stored_pdf_listed_for_print_and_tracked(
    settings: NotifierSettings,
    tenants: tuple[str, str],
    kafka_bootstrap: str,
) -> None:
    tenant, _ = tenants
    due = letter_action(tenant, f"C-{uuid4().hex[:8]}")
    async with (
        serving(settings) as url,
        client(url, KEY_A) as a,
        client(url, KEY_B) as b,
        EventStream(
            kafka_bootstrap, Topic.MESSAGE_SENT, Topic.MESSAGE_STATUS_CHANGED, timeout_s=TIMEOUT_S
        ) as events,
    ):
        uploaded = await a.post("/v1/templates/formal-letter/es-AR", json={"parts": LETTER_AR})
        assert uploaded.status_code == 201

        await publish_actions(kafka_bootstrap, due)
        sent = await events.wait_for(
            lambda p: isinstance(p, MessageSent) and p.action_id == due.action_id
        )
        # The same action again (a redelivery, a re-emitted action): no second letter.
        await publish_actions(kafka_bootstrap, due)
        await events.settle(3)

        assert isinstance(sent, MessageSent)
        assert (sent.channel, sent.provider) == (Channel.LETTER, "letter")
        assert [
            p
            for p in events.payloads
            if isinstance(p, MessageSent) and p.action_id == due.action_id
        ] == [sent]
        queue = (await a.get("/v1/letters", params={"status": "pending_print"})).json()
        [letter] = [item for item in queue if item["action_id"] == str(due.action_id)]
        assert letter["letter_id"] == sent.provider_message_id
        assert letter["tracking_number"] is None
        assert (await a.get("/v1/letters", params={"status": "posted"})).json() == []

        pdf = await a.get(letter["pdf_url"])
        assert pdf.headers["content-type"] == "application/pdf"
        text = pypdf.PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
        assert "Buenos Aires, 20 de noviembre de 2026" in text
        # Addressed in the envelope's window, above the letter's text.
        window = (
            "Ana Pérez\nAv. Corrientes 1234, piso 5 B\n"
            "C1043AAZ Ciudad Autónoma de Buenos Aires\nCABA\nARGENTINA\n"
        )
        assert window in text
        assert text.index(window) < text.index("Buenos Aires, 20 de noviembre de 2026")
        assert letter["recipient"] == (
            f"Ana Pérez ({due.debtor_id}), Av. Corrientes 1234, piso 5 B, "
            "C1043AAZ Ciudad Autónoma de Buenos Aires, CABA, ARGENTINA"
        )
        assert "Señor/a Ana Pérez" in text
        assert "Banco Austral le intima a pagar $12.345,67 ARS, vencido el 17/8/2026" in text
        assert f"https://pagos.example.com/{tenant}/{due.debtor_id}" in text

        # Another tenant can neither list, read nor track it.
        assert (await b.get("/v1/letters")).json() == []
        assert (await b.get(letter["pdf_url"])).status_code == 404
        track = f"/v1/letters/{letter['letter_id']}/tracking"
        assert (
            await b.post(track, json={"status": "delivered", "tracking_number": "X"})
        ).status_code == 404

        assert (await a.post(track, json={"status": "printed"})).status_code == 200
        assert (await a.post(track, json={"status": "posted"})).status_code == 409
        posted = await a.post(track, json={"status": "posted", "tracking_number": "CD123456789AR"})
        assert posted.json()["status"] == "posted"
        assert posted.json()["tracking_number"] == "CD123456789AR"
        assert [
            item["letter_id"] for item in (await a.get("/v1/letters?status=posted")).json()
        ] == [letter["letter_id"]]
        delivered = await a.post(
            track, json={"status": "delivered", "occurred_at": "2026-11-25T14:30:00-03:00"}
        )
        assert delivered.json()["status"] == "delivered"

        status = await events.wait_for(
            lambda p: isinstance(p, MessageStatusChanged) and p.action_id == due.action_id
        )
        assert isinstance(status, MessageStatusChanged)
        assert (status.channel, status.status) == (Channel.LETTER, MessageStatus.DELIVERED)
        assert status.occurred_at == datetime(2026, 11, 25, 17, 30, tzinfo=UTC)
        assert status.tenant_id == tenant and status.debtor_id == due.debtor_id
        assert "CD123456789AR" in (status.detail or "")
        # Saying it again changes nothing and publishes nothing more.
        again = await a.post(track, json={"status": "delivered"})
        assert again.status_code == 200
        await events.settle(2)
        assert [
            p
            for p in events.payloads
            if isinstance(p, MessageStatusChanged) and p.action_id == due.action_id
        ] == [status]


async def test_a_letter_to_a_debtor_without_a_postal_address_fails_and_prints_nothing(
    settings: NotifierSettings, tenants: tuple[str, str], kafka_bootstrap: str
) -> None:
    tenant, _ = tenants
    unaddressed = letter_action(tenant, f"C-{uuid4().hex[:8]}", address=None)
    async with (
        serving(settings) as url,
        client(url, KEY_A) as a,
        EventStream(
            kafka_bootstrap, Topic.MESSAGE_SENT, Topic.MESSAGE_STATUS_CHANGED, timeout_s=TIMEOUT_S
        ) as events,
    ):
        await publish_actions(kafka_bootstrap, unaddressed)
        failed = await events.wait_for(
            lambda p: isinstance(p, MessageStatusChanged) and p.action_id == unaddressed.action_id
        )
        # Redelivered: still one failure, still nothing printed.
        await publish_actions(kafka_bootstrap, unaddressed)
        await events.settle(3)
        queue = (await a.get("/v1/letters")).json()

    # The orchestrator hears a permanent failure, with the reason, and falls back.
    assert isinstance(failed, MessageStatusChanged)
    assert (failed.channel, failed.status) == (Channel.LETTER, MessageStatus.FAILED)
    assert (failed.detail or "").startswith("no_postal_address: ")
    assert unaddressed.debtor_id in (failed.detail or "")
    assert [
        p for p in events.payloads if getattr(p, "action_id", None) == unaddressed.action_id
    ] == [failed]
    assert [item for item in queue if item["action_id"] == str(unaddressed.action_id)] == []

"""Portal-api builds its read models from events on a real Kafka broker into a real PostgreSQL, and
serves each tenant only its own debtors."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from prometheus_client import REGISTRY

from recupero_events import (
    ActionDue,
    Channel,
    CollectionStage,
    ContactDetails,
    DebtDocument,
    DebtImported,
    DebtorSegmented,
    DocumentKind,
    EncodedEvent,
    EventPayload,
    MessageSent,
    Money,
    PaymentReceived,
    encode,
)
from recupero_portal_api.adapters.repository import PortalRepository
from recupero_portal_api.bootstrap import bootstrap
from recupero_portal_api.settings import PortalSettings
from recupero_runtime.auth import hash_api_key
from recupero_runtime.service import Service

pytestmark = pytest.mark.integration

CATCH_UP_TIMEOUT_S = 60.0
SNAPSHOT_AS_OF = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
CONTACT = ContactDetails(
    name="Ana Pérez",
    email="ana@example.com",
    phone="+5215512345678",
    country="MX",
    time_zone="America/Mexico_City",
)


@dataclass(frozen=True)
class Portal:
    service: Service[PortalRepository]
    client: httpx.AsyncClient
    tenant_a: str
    tenant_b: str
    key_a: str
    key_b: str

    async def get(self, path: str, key: str | None, **params: Any) -> httpx.Response:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return await self.client.get(path, headers=headers, params=params)


@pytest.fixture
async def portal(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Portal]:
    suffix = uuid4().hex[:8]
    tenant_a, tenant_b = f"bank-a-{suffix}", f"bank-b-{suffix}"
    key_a, key_b = f"rk_a_{suffix}", f"rk_b_{suffix}"
    settings = PortalSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys={hash_api_key(key_a): tenant_a, hash_api_key(key_b): tenant_b},
        log_level="WARNING",
    )
    service, app = bootstrap(settings)
    await service.start()
    try:
        async with _client(app) as client:
            yield Portal(service, client, tenant_a, tenant_b, key_a, key_b)
    finally:
        await service.stop()


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal")


async def publish(producer: AIOKafkaProducer, *events: EncodedEvent) -> None:
    for event in events:
        await producer.send_and_wait(
            event.topic, value=event.value, key=event.key, headers=event.headers
        )


def event(payload: EventPayload, at: datetime, source: str) -> EncodedEvent:
    return encode(payload, source=f"recupero/{source}", time=at)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll until the read model has caught up with what was published."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"read model did not catch up within {CATCH_UP_TIMEOUT_S}s: {what}"
            )
        await asyncio.sleep(0.1)


def debt_imported(tenant_id: str, debtor_id: str, *amounts: int) -> DebtImported:
    documents = [
        DebtDocument(
            document_id=f"FC-{number}",
            kind=DocumentKind.INVOICE if number == 1 else DocumentKind.INSTALLMENT,
            due_on=date(2025, 1, 15) + timedelta(days=30 * (number - 1)),
            amount=Money(amount_minor=amount, currency="MXN"),
        )
        for number, amount in enumerate(amounts, start=1)
    ]
    return DebtImported(
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        import_id=uuid4(),
        as_of=SNAPSHOT_AS_OF,
        contact=CONTACT,
        documents=documents,
        balance=Money(amount_minor=sum(amounts), currency="MXN"),
        oldest_due_on=documents[0].due_on,
        change="new",
    )


def debtor_segmented(tenant_id: str, debtor_id: str, balance_minor: int) -> DebtorSegmented:
    balance = Money(amount_minor=balance_minor, currency="MXN")
    return DebtorSegmented(
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        segment="31-60",
        stage=CollectionStage.ADMINISTRATIVE,
        days_past_due=45,
        balance=balance,
        snapshot_balance=balance,
        snapshot_as_of=SNAPSHOT_AS_OF,
        oldest_due_on=date(2025, 1, 15),
        contact=CONTACT,
        ruleset_version="default-1",
        reason="rule '31-60': 31 <= days_past_due <= 60",
        evaluated_at=SNAPSHOT_AS_OF + timedelta(minutes=1),
    )


def duplicates_skipped(topic: str) -> float:
    labels = {"consumer": "portal-api", "topic": topic, "outcome": "duplicate"}
    return REGISTRY.get_sample_value("recupero_events_consumed_total", labels) or 0.0


async def test_debtor_view_follows_one_debtors_events_and_hides_other_tenants(
    portal: Portal, producer: AIOKafkaProducer
) -> None:
    tenant, debtor_id = portal.tenant_a, "C-000123"
    start = SNAPSHOT_AS_OF
    action_id = uuid4()
    payment_id = uuid4()
    imported = event(debt_imported(tenant, debtor_id, 100_000, 50_000), start, "ingest")
    segmented = event(
        debtor_segmented(tenant, debtor_id, 150_000), start + timedelta(minutes=1), "segmenter"
    )
    action_due = event(
        ActionDue(
            tenant_id=tenant,
            debtor_id=debtor_id,
            action_id=action_id,
            channel=Channel.WHATSAPP,
            template="first-reminder",
            strategy="default/1",
            scheduled_for=start + timedelta(minutes=2),
            contact=CONTACT,
            balance=Money(amount_minor=150_000, currency="MXN"),
            days_past_due=45,
            oldest_due_on=date(2025, 1, 15),
        ),
        start + timedelta(minutes=2),
        "orchestrator",
    )
    message_sent = event(
        MessageSent(
            tenant_id=tenant,
            debtor_id=debtor_id,
            action_id=action_id,
            channel=Channel.WHATSAPP,
            provider="whatsapp-cloud",
            provider_message_id="wamid.HBgLNTIxNTUxMjM0NTY3OBUCABIYFjNFQjA",
            template="first-reminder",
            sent_at=start + timedelta(minutes=3),
        ),
        start + timedelta(minutes=3),
        "notifier",
    )
    payment = event(
        PaymentReceived(
            tenant_id=tenant,
            debtor_id=debtor_id,
            payment_id=payment_id,
            external_reference="MP-123456789",
            amount=Money(amount_minor=40_000, currency="MXN"),
            method="bank_transfer",
            received_at=start + timedelta(minutes=4),
        ),
        start + timedelta(minutes=4),
        "payments",
    )
    other_tenants_debtor = event(debt_imported(portal.tenant_b, "C-999", 70_000), start, "ingest")

    # Published newest first: topics are not ordered with each other, so neither is consumption.
    await publish(
        producer, payment, message_sent, action_due, segmented, imported, other_tenants_debtor
    )

    async def whole_timeline_is_in() -> bool:
        response = await portal.get(f"/v1/debtors/{debtor_id}", portal.key_a)
        return response.status_code == 200 and len(response.json()["timeline"]) == 5

    await eventually(whole_timeline_is_in, "five events for the debtor")
    view = (await portal.get(f"/v1/debtors/{debtor_id}", portal.key_a)).json()

    assert view["debtor_id"] == debtor_id
    assert view["contact"] == {
        "name": "Ana Pérez",
        "email": "ana@example.com",
        "phone": "+5215512345678",
        "country": "MX",
        "time_zone": "America/Mexico_City",
    }
    assert [(doc["document_id"], doc["kind"], doc["amount"]) for doc in view["documents"]] == [
        ("FC-1", "invoice", {"amount_minor": 100_000, "currency": "MXN"}),
        ("FC-2", "installment", {"amount_minor": 50_000, "currency": "MXN"}),
    ]
    assert view["balance"] == {"amount_minor": 110_000, "currency": "MXN"}
    assert (view["segment"], view["stage"], view["days_past_due"]) == (
        "31-60",
        "administrative",
        45,
    )
    timeline = view["timeline"]
    assert [entry["topic"] for entry in timeline] == [
        "debt-imported",
        "debtor-segmented",
        "action-due",
        "message-sent",
        "payment-received",
    ]
    assert [entry["type"] for entry in timeline][-1] == "com.recupero.payment.received.v1"
    assert [datetime.fromisoformat(entry["occurred_at"]) for entry in timeline] == [
        start + timedelta(minutes=minutes) for minutes in range(5)
    ]
    assert timeline[0]["summary"] == "Debt imported: 2 documents, balance MXN 1,500.00"
    assert timeline[4]["summary"] == "Payment received: MXN 400.00 by bank_transfer"
    assert timeline[4]["details"]["payment_id"] == str(payment_id)
    assert timeline[4]["details"]["external_reference"] == "MP-123456789"

    # Another tenant cannot tell the debtor exists; no key or a wrong key is refused outright.
    hidden = await portal.get(f"/v1/debtors/{debtor_id}", portal.key_b)
    assert hidden.status_code == 404
    assert debtor_id in hidden.json()["detail"]
    assert (await portal.get(f"/v1/debtors/{debtor_id}", None)).status_code == 401
    assert (await portal.get(f"/v1/debtors/{debtor_id}", "rk_not_a_key")).status_code == 401
    assert (await portal.get("/v1/summary", None)).status_code == 401

    listed = (await portal.get("/v1/debtors", portal.key_a)).json()
    assert listed["total"] == 1
    assert listed["items"] == [
        {
            "debtor_id": debtor_id,
            "name": "Ana Pérez",
            "balance": {"amount_minor": 110_000, "currency": "MXN"},
            "segment": "31-60",
            "stage": "administrative",
        }
    ]
    assert (await portal.get("/v1/debtors", portal.key_a, segment="90+")).json()["items"] == []

    async def other_tenant_is_in() -> bool:
        page = (await portal.get("/v1/debtors", portal.key_b)).json()
        return bool(page["total"] == 1)

    await eventually(other_tenant_is_in, "the other tenant's debtor")
    [other] = (await portal.get("/v1/debtors", portal.key_b)).json()["items"]
    assert other["debtor_id"] == "C-999"
    assert other["segment"] is None

    summary = (await portal.get("/v1/summary", portal.key_a)).json()
    assert summary == {
        "debtors_imported": 1,
        "debtors_segmented": 1,
        "actions_due": 1,
        "messages_sent": 1,
        "promises_registered": 0,
        "payments_applied": 1,
        "outstanding_by_currency": {"MXN": 110_000},
    }

    # Kafka delivers at least once: the same CloudEvent (same ce_id) again changes nothing.
    skipped_before = duplicates_skipped("payment-received")
    await publish(producer, payment)

    async def duplicate_was_skipped() -> bool:
        return duplicates_skipped("payment-received") > skipped_before

    await eventually(duplicate_was_skipped, "the redelivered payment")
    again = (await portal.get(f"/v1/debtors/{debtor_id}", portal.key_a)).json()
    assert len(again["timeline"]) == 5
    assert again["balance"] == {"amount_minor": 110_000, "currency": "MXN"}
    assert (await portal.get("/v1/summary", portal.key_a)).json()["payments_applied"] == 1


async def test_segmentation_read_before_the_import_is_merged_with_it(
    portal: Portal, producer: AIOKafkaProducer
) -> None:
    tenant, debtor_id = portal.tenant_a, "C-000777"

    # The segmenter decided a minute after the import, but its topic was read first.
    await publish(
        producer,
        event(
            debtor_segmented(tenant, debtor_id, 80_000),
            SNAPSHOT_AS_OF + timedelta(minutes=1),
            "segmenter",
        ),
    )

    async def segmented_debtor_is_in() -> bool:
        response = await portal.get(f"/v1/debtors/{debtor_id}", portal.key_a)
        return response.status_code == 200

    await eventually(segmented_debtor_is_in, "the segmented debtor")
    early = (await portal.get(f"/v1/debtors/{debtor_id}", portal.key_a)).json()
    assert early["documents"] == []
    assert early["segment"] == "31-60"
    assert early["balance"] == {"amount_minor": 80_000, "currency": "MXN"}

    await publish(
        producer, event(debt_imported(tenant, debtor_id, 80_000), SNAPSHOT_AS_OF, "ingest")
    )

    async def documents_are_in() -> bool:
        response = await portal.get(f"/v1/debtors/{debtor_id}", portal.key_a)
        return len(response.json()["documents"]) == 1

    await eventually(documents_are_in, "the imported documents")
    merged = (await portal.get(f"/v1/debtors/{debtor_id}", portal.key_a)).json()
    assert merged["segment"] == "31-60"
    assert merged["stage"] == "administrative"
    assert merged["balance"] == {"amount_minor": 80_000, "currency": "MXN"}
    assert [entry["topic"] for entry in merged["timeline"]] == ["debt-imported", "debtor-segmented"]

    unknown = await portal.get("/v1/debtors/nobody", portal.key_a)
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "debtor 'nobody' not found"}

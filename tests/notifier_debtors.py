"""Debtors the notifier knows: their `debt-imported`, published and waited for until recorded."""

import asyncio
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from recupero_events import (
    ContactDetails,
    DebtDocument,
    DebtImported,
    DocumentKind,
    Money,
    encode,
)
from recupero_notifier.adapters.tables import debtor_facts
from recupero_runtime.db import create_engine

TIMEOUT_S = 60
TIME_ZONE = "America/Mexico_City"


def debt_imported(debtor_id: str, phone: str, tenant_id: str = "demo-bank") -> DebtImported:
    return DebtImported(
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        import_id=uuid4(),
        as_of=datetime.now(UTC) - timedelta(hours=1),
        contact=ContactDetails(name="Ana Pérez", phone=phone, country="MX", time_zone=TIME_ZONE),
        documents=[
            DebtDocument(
                document_id="FC-0001",
                kind=DocumentKind.INVOICE,
                due_on=date(2026, 3, 5),
                amount=Money(amount_minor=1_234_567, currency="MXN"),
            )
        ],
        balance=Money(amount_minor=1_234_567, currency="MXN"),
        oldest_due_on=date(2026, 3, 5),
        change="new",
    )


async def known_debtor(
    producer_bootstrap: str,
    database_url: str,
    debtor_id: str,
    phone: str,
    tenant_id: str = "demo-bank",
) -> None:
    """Publish the debtor's `debt-imported` and wait until the notifier recorded it."""
    producer = AIOKafkaProducer(bootstrap_servers=producer_bootstrap, acks="all")
    await producer.start()
    try:
        event = encode(debt_imported(debtor_id, phone, tenant_id), source="recupero/ingest")
        await producer.send_and_wait(event.topic, event.value, key=event.key, headers=event.headers)
    finally:
        await producer.stop()
    engine = create_engine(database_url)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                async with engine.connect() as connection:
                    found = await connection.scalar(
                        select(debtor_facts.c.debtor_id).where(
                            debtor_facts.c.tenant_id == tenant_id,
                            debtor_facts.c.debtor_id == debtor_id,
                        )
                    )
                if found is not None:
                    return
                await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


def new_phone() -> str:
    return "+52155" + str(uuid4().int)[:8]

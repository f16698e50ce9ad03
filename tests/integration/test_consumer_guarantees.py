"""The runtime kit's delivery guarantees on a real broker and database, through the segmenter:
a poison message is dead-lettered and the partition keeps flowing; a redelivered event changes
nothing; what a handler publishes leaves through the outbox after commit. Each runs with records
handled one after the other and with several debtors' records at once (`consumer_concurrency`),
where one debtor's records must still apply in the order they were produced."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from recupero_events import (
    ContactDetails,
    DebtDocument,
    DebtImported,
    DocumentKind,
    Money,
    encode,
)
from recupero_runtime.service import Service
from recupero_segmenter.adapters.repository import SegmenterRepository
from recupero_segmenter.bootstrap import bootstrap
from recupero_segmenter.settings import SegmenterSettings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


@pytest.fixture(params=[1, 8], ids=["one-at-a-time", "eight-at-once"])
async def segmenter(
    database_url: str, kafka_bootstrap: str, request: pytest.FixtureRequest
) -> AsyncIterator[Service[SegmenterRepository]]:
    settings = SegmenterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        log_level="WARNING",
        consumer_concurrency=request.param,
    )
    service, _ = bootstrap(settings, clock=lambda: NOW)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def imported(tenant_id: str, debtor_id: str, due_on: date = date(2026, 9, 20)) -> DebtImported:
    return DebtImported(
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        import_id=uuid4(),
        as_of=NOW,
        contact=ContactDetails(name="Luis Gómez", country="CO", time_zone="America/Bogota"),
        documents=[
            DebtDocument(
                document_id="F-1",
                kind=DocumentKind.INVOICE,
                due_on=due_on,
                amount=Money(amount_minor=990_000, currency="COP"),
            )
        ],
        balance=Money(amount_minor=990_000, currency="COP"),
        oldest_due_on=due_on,
        change="new",
    )


async def read_until(
    bootstrap: str, topic: str, wanted: int, match: bytes
) -> list[tuple[bytes | None, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"probe-{uuid4()}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[tuple[bytes | None, dict[str, bytes]]] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < wanted:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [
                        (r.value, dict(r.headers))
                        for r in records
                        if r.key and r.key.startswith(match)
                    ]
    finally:
        await consumer.stop()
    return found


async def test_poison_is_dead_lettered_and_the_partition_keeps_flowing(
    segmenter: Service[SegmenterRepository], kafka_bootstrap: str
) -> None:
    tenant = f"t-{uuid4().hex[:8]}"
    good = encode(imported(tenant, "D-1"), source="recupero/test")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # Same key, so same partition: the poison comes first and must not block the good one.
        await producer.send_and_wait(
            "debt-imported", b"{not json", key=good.key, headers=good.headers
        )
        await producer.send_and_wait(
            "debt-imported", good.value, key=good.key, headers=good.headers
        )
        # Redelivery of the very same event: no second placement.
        await producer.send_and_wait(
            "debt-imported", good.value, key=good.key, headers=good.headers
        )
    finally:
        await producer.stop()

    [(value, headers)] = await read_until(kafka_bootstrap, "debt-imported.dlq", 1, tenant.encode())
    assert value == b"{not json"
    assert b"payload does not match DebtImported" in headers["dlq_error"]
    assert headers["dlq_consumer"] == b"segmenter"

    [(segmented, _)] = await read_until(kafka_bootstrap, "debtor-segmented", 1, tenant.encode())
    assert segmented is not None and b'"segment":"31-60"' in segmented
    async with segmenter.unit_of_work() as uow:
        history = await uow.repo.history(tenant, "D-1")
    assert len(history) == 1
    assert history[0]["reason"] == "rule '31-60': 31 <= days_past_due <= 60"


async def test_one_debtors_events_apply_in_order_while_other_debtors_run_alongside(
    segmenter: Service[SegmenterRepository], kafka_bootstrap: str
) -> None:
    tenant = f"t-{uuid4().hex[:8]}"
    debtors = [f"D-{n}" for n in range(12)]
    # Each debtor's snapshots age it: 1-30, then 31-60, then 91-180 days past due.
    dues = [date(2026, 10, 20), date(2026, 9, 20), date(2026, 7, 20)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for due_on in dues:
            for debtor in debtors:
                event = encode(imported(tenant, debtor, due_on), source="recupero/test")
                await producer.send(
                    "debt-imported", event.value, key=event.key, headers=event.headers
                )
        await producer.flush()
    finally:
        await producer.stop()

    await read_until(kafka_bootstrap, "debtor-segmented", 3 * len(debtors), tenant.encode())
    async with segmenter.unit_of_work() as uow:
        for debtor in debtors:
            history = await uow.repo.history(tenant, debtor)
            assert [row["segment"] for row in history] == ["91-180", "31-60", "1-30"], debtor

"""The runtime kit's delivery guarantees on a real broker and database, through the segmenter:
a poison message is dead-lettered and the partition keeps flowing; a redelivered event changes
nothing; what a handler publishes leaves through the outbox after commit. Each runs with records
handled one after the other and with several debtors' records at once (`consumer_concurrency`),
where one debtor's records must still apply in the order they were produced, and with a poll's
records handled in one transaction (`Batched`)."""

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

import recupero_segmenter
from recupero_events import (
    ContactDetails,
    DebtDocument,
    DebtImported,
    DecodedEvent,
    DocumentKind,
    Money,
    encode,
)
from recupero_runtime.consumer import Batched
from recupero_runtime.db import UnitOfWork
from recupero_runtime.service import Service
from recupero_segmenter.adapters.repository import SegmenterRepository
from recupero_segmenter.adapters.tables import schema as segmenter_schema
from recupero_segmenter.bootstrap import bootstrap
from recupero_segmenter.handlers import RuleBook, debt_imported_handler
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


async def test_a_batch_applies_each_new_event_once_and_isolates_the_record_that_fails(
    database_url: str, kafka_bootstrap: str
) -> None:
    """The batch path (`Batched`), through the segmenter's own handler: a poll's records in one
    transaction. A poison record is dead-lettered, a redelivered event skipped, a transient
    failure in the middle of a batch rolls the whole batch back and retries it (nothing applied
    twice, nothing lost), and a record whose handling keeps failing is dead-lettered alone."""
    tenant = f"t-{uuid4().hex[:8]}"
    rules = RuleBook()
    segment = debt_imported_handler(lambda: NOW, rules)
    batches_seen: list[int] = []
    lost_connection_once: list[str] = []

    async def handle(events: Sequence[DecodedEvent], uow: UnitOfWork[Any]) -> None:
        ours = [event for event in events if event.payload.tenant_id == tenant]
        if ours:
            batches_seen.append(len(ours))
        for event in ours:
            if event.payload.debtor_id == "D-4":
                raise ValueError("D-4 cannot be segmented")
            await segment(event, uow)
            if event.payload.debtor_id == "D-2" and not lost_connection_once:
                # After D-1 and D-2 were applied in this transaction: all of it rolls back.
                lost_connection_once.append("D-2")
                raise ConnectionError("connection lost in the middle of the batch")

    debtors = ["D-1", "D-2", "D-3", "D-4", "D-5"]
    events = [encode(imported(tenant, debtor), source="recupero/test") for debtor in debtors]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # All on the partition of one key, produced before the consumer starts: one poll.
        key = events[0].key
        await producer.send("debt-imported", b"{not json", key=key, headers=events[0].headers)
        for event in [events[0], events[0], *events[1:]]:
            await producer.send("debt-imported", event.value, key=key, headers=event.headers)
        await producer.flush()
    finally:
        await producer.stop()

    settings = SegmenterSettings(
        service_name=f"segmenter-batches-{uuid4().hex[:6]}",
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        log_level="WARNING",
    )
    service = Service(
        settings,
        segmenter_schema,
        migrations=Path(recupero_segmenter.__file__).parent / "migrations",
        repositories=SegmenterRepository,
    )
    service.consume({"debt-imported": Batched(handle)})
    await service.start()
    try:
        dead = await read_until(kafka_bootstrap, "debt-imported.dlq", 2, tenant.encode())
        segmented = await read_until(kafka_bootstrap, "debtor-segmented", 4, tenant.encode())
    finally:
        await service.stop()

    # The poll's five events at once; the redelivered copy of D-1 never reaches the handler.
    assert batches_seen[0] == 5
    assert sorted(value for value, _ in dead) == sorted([b"{not json", events[3].value])
    placed = sorted(json.loads(value or b"{}")["debtor_id"] for value, _ in segmented)
    assert placed == ["D-1", "D-2", "D-3", "D-5"]
    async with service.unit_of_work() as uow:
        for debtor in ["D-1", "D-2", "D-3", "D-5"]:
            assert len(await uow.repo.history(tenant, debtor)) == 1, debtor
        assert await uow.repo.history(tenant, "D-4") == []

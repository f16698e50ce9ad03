"""Firing a due batch on a real PostgreSQL and Kafka: the outbox holds a batch's `action-due` a
thousand to a row, and what reaches Kafka is still one message per action, keyed by its debtor,
with the CloudEvents headers and the payload the notifier reads; two replicas' relays send each
once."""

import asyncio
from uuid import uuid4

import pytest

from recupero_events import ActionDue, Channel, Money, decode, event_type_of
from recupero_orchestrator import handlers
from recupero_orchestrator.entrypoints.scheduler import run_once
from recupero_runtime.kafka import Publisher
from recupero_runtime.outbox import OutboxRelay
from tests.integration.test_orchestrator_scenario import (
    DEBTOR,
    EARLY,
    Orchestrator,
    _timing,
    orchestrator,
    segmented,
    utc,
)
from tests.kafka_reading import of_tenant, read_topics

pytestmark = pytest.mark.integration
__all__ = ["orchestrator"]  # the fixture, shared with the scenario test


async def test_a_fired_batch_is_one_message_per_action_keyed_by_its_debtor(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    await o.activate(EARLY)
    handle = handlers.debtor_segmented_handler(o.clock, _timing())
    debtors = [f"B-{n}" for n in range(12)]
    for n, debtor_id in enumerate(debtors):
        event = segmented(o.tenant_id, "1-30", "early", 12, o.clock.now)
        balance = Money(amount_minor=100_000 + n, currency="MXN")
        await o.handle(
            handle,
            event.model_copy(
                update={"debtor_id": debtor_id, "balance": balance, "snapshot_balance": balance}
            ),
        )
    await o.at(utc(11, 2, 16))
    await o.published("action-due")  # the relay has sent everything

    records = of_tenant(
        (await read_topics(o.kafka_bootstrap, ["action-due"]))["action-due"], o.tenant_id
    )
    assert sorted(record.key for record in records) == sorted(
        f"{o.tenant_id}:{debtor_id}".encode() for debtor_id in debtors
    )
    events = [decode(record.topic, record.value, record.headers) for record in records]
    assert len({event.event_id for event in events}) == len(debtors)
    for record, event in zip(records, events, strict=True):
        headers = dict(record.headers)
        assert headers["ce_type"] == event_type_of(ActionDue).encode()
        assert headers["ce_source"] == b"recupero/orchestrator"
        assert headers["content-type"] == b"application/json"
        payload = event.payload
        assert isinstance(payload, ActionDue)
        n = debtors.index(payload.debtor_id)
        assert payload.tenant_id == o.tenant_id
        assert payload.channel is Channel.WHATSAPP
        assert payload.balance == Money(amount_minor=100_000 + n, currency="MXN")
        assert payload.contact.phone == "+5215512345678"
        assert payload.contact.name == "Ana Pérez"

    # Each went out after the contact policy allowed it, and that decision is recorded.
    for debtor_id in debtors:
        response = await o.client.get(f"/v1/debtors/{debtor_id}/contact-decisions")
        decisions = response.json()
        assert [(d["channel"], d["verdict"]) for d in decisions] == [("whatsapp", "allowed")]


async def test_two_replicas_relays_send_each_action_once(orchestrator: Orchestrator) -> None:
    o = orchestrator
    await o.activate(EARLY)
    handle = handlers.debtor_segmented_handler(o.clock, _timing())
    debtors = [f"R-{n}" for n in range(60)]
    for debtor_id in debtors:
        event = segmented(o.tenant_id, "1-30", "early", 12, o.clock.now)
        await o.handle(handle, event.model_copy(update={"debtor_id": debtor_id}))
    # A second replica's relay polls the same outbox while the first is woken by each commit.
    publisher = Publisher(o.kafka_bootstrap)
    other = OutboxRelay(o.service.sessions, o.service.schema, poll_interval=0.001)
    relaying = asyncio.create_task(other.run(publisher))
    try:
        for _ in range(6):  # six batches of ten, each in its own outbox row
            await run_once(o.service, utc(11, 2, 16), 10)
        await o.published("action-due")
    finally:
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
        await publisher.close()
    records = of_tenant(
        (await read_topics(o.kafka_bootstrap, ["action-due"]))["action-due"], o.tenant_id
    )
    assert sorted(record.key for record in records) == sorted(
        f"{o.tenant_id}:{debtor_id}".encode() for debtor_id in debtors
    )


async def test_what_a_rolled_back_batch_wrote_is_gone(orchestrator: Orchestrator) -> None:
    # Batches write through the asyncpg connection under the unit of work's session, even as
    # its first statement: those writes are the transaction's, and go with its rollback.
    o = orchestrator
    async with o.service.unit_of_work() as uow:
        await uow.repo.record_contacts([(o.tenant_id, DEBTOR, "sms", uuid4())], utc(11, 2, 16))
        # No commit: leaving the unit of work rolls it back.
    assert await o.query("SELECT 1 FROM orchestrator.contact_history WHERE tenant_id = :t") == []

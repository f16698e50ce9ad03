"""Batch outbox rows on a real database and broker: events written a thousand to a row by one
statement reach Kafka one message each, with their own key, headers and payload, whatever their
debtor ids hold; rows written one event each are relayed alongside them in commit order."""

import json
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import Text, column, literal, select, values
from sqlalchemy.ext.asyncio import async_sessionmaker

import recupero_payments
from recupero_events import partition_key
from recupero_payments.adapters.tables import schema
from recupero_runtime.db import create_engine, upgrade_schema
from recupero_runtime.kafka import Publisher, ensure_topics
from recupero_runtime.outbox import BATCH_EVENTS, OutboxRelay, insert_event_batches
from tests.kafka_reading import read_topics

pytestmark = pytest.mark.integration

# Ids a bank's export may really carry: separators, quotes, accents, a backslash, spaces.
AWKWARD_IDS = ["tab\there", "new\nline", 'quo"te', "back\\slash", "Nuñez 0042", "ünï", " "]


async def test_a_batch_row_becomes_one_message_per_event(
    database_url: str, kafka_bootstrap: str
) -> None:
    engine = create_engine(database_url)
    await upgrade_schema(
        engine, Path(recupero_payments.__file__).parent / "migrations", schema.name
    )
    sessions = async_sessionmaker(engine)
    topic = f"batch-test-{uuid4().hex[:8]}"
    tenant = f"t-{uuid4().hex[:8]}"
    debtor_ids = AWKWARD_IDS + [f"D{n:05d}" for n in range(2 * BATCH_EVENTS + 500)]
    events = {str(uuid4()): debtor for debtor in debtor_ids}
    rows = values(
        column("event_id", Text), column("debtor_id", Text), column("payload", Text), name="e"
    ).data(
        [
            (event_id, debtor, json.dumps({"debtor_id": debtor, "n": n}, ensure_ascii=False))
            for n, (event_id, debtor) in enumerate(events.items())
        ]
    )
    async with sessions() as session, session.begin():
        await session.execute(
            schema.outbox.insert().values(
                event_id=str(uuid4()),
                tenant_id=tenant,
                debtor_id="single",
                topic=topic,
                event_type="test.single.v1",
                source="tests",
                value=b'{"single":true}',
            )
        )
        await session.execute(
            insert_event_batches(
                schema.outbox,
                select(rows).subquery("events"),
                tenant_id=literal(tenant, Text),
                topic=topic,
                event_type="test.batched.v1",
                source=literal("tests", Text),
                correlation_id=literal("import-7", Text),
            )
        )
    async with sessions() as session:
        stored = (
            await session.execute(select(schema.outbox.c.batch_events).order_by(schema.outbox.c.id))
        ).scalars()
        # One single-event row, then the batch rows: 1,000 + 1,000 + 507 events.
        assert list(stored) == [None, BATCH_EVENTS, BATCH_EVENTS, 507]

    await ensure_topics(kafka_bootstrap, [topic])
    publisher = Publisher(kafka_bootstrap)
    relay = OutboxRelay(sessions, schema, poll_interval=0.1, batch_size=1500)
    try:
        published = [await relay.publish_pending(publisher) for _ in range(4)]
    finally:
        await publisher.close()
    # A relay batch never splits a row: 1 + 1,000, then 1,000, then 507, then nothing left.
    assert published == [1 + BATCH_EVENTS, BATCH_EVENTS, 507, 0]

    records = (await read_topics(kafka_bootstrap, [topic]))[topic]
    assert len(records) == 1 + len(events)
    batched = [r for r in records if dict(r.headers)["ce_type"] == b"test.batched.v1"]
    seen = {}
    for record in batched:
        headers = dict(record.headers)
        event_id = headers["ce_id"].decode()
        debtor = events[event_id]
        payload = json.loads(record.value)
        assert payload["debtor_id"] == debtor
        assert record.key == partition_key(tenant, debtor)
        assert headers["ce_subject"].decode() == debtor
        assert headers["ce_tenantid"].decode() == tenant
        assert headers["ce_correlationid"] == b"import-7"
        seen[event_id] = debtor
    assert seen == events
    await engine.dispose()

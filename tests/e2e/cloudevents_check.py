"""Reads every message of a tenant on the six topics with the official CloudEvents SDK."""

import asyncio
import json
from collections import Counter
from pathlib import Path
from uuid import uuid4

import jsonschema
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from recupero_events import Topic

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events" / "schemas"


async def _read_all(bootstrap: str, topics: list[str]) -> dict[str, list[KafkaMessage]]:
    """Every message on the topics, from the beginning to the current end."""
    # A fresh group reading from the earliest offset (aiokafka 0.14's group-less consumer raises
    # CancelledError on stop()).
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"contract-check-{uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        messages: dict[str, list[KafkaMessage]] = {topic: [] for topic in topics}

        def keep(batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
            for tp, records in batch.items():
                messages[tp.topic].extend(
                    KafkaMessage(headers=dict(r.headers), key=r.key, value=r.value) for r in records
                )

        while not consumer.assignment():
            keep(await consumer.getmany(timeout_ms=500))
        partitions = list(consumer.assignment())
        end = await consumer.end_offsets(partitions)

        async def behind() -> bool:
            positions = [await consumer.position(tp) for tp in partitions]
            return any(
                position < end[tp] for position, tp in zip(positions, partitions, strict=True)
            )

        while await behind():
            keep(await consumer.getmany(timeout_ms=1000))
        return messages
    finally:
        await consumer.stop()


def validate_tenant_events(bootstrap: str, tenant_id: str) -> Counter[str]:
    """Per topic, how many of the tenant's messages the SDK read and the JSON Schema accepted."""
    counts: Counter[str] = Counter()
    everything = asyncio.run(_read_all(bootstrap, [topic.value for topic in Topic]))
    for topic in Topic:
        schema = json.loads((SCHEMAS / f"{topic.value}.json").read_text())
        validator = jsonschema.Draft202012Validator(schema)
        for message in everything[topic.value]:
            if message.headers.get("ce_tenantid") != tenant_id.encode():
                continue
            event = from_binary(message, JSONFormat())
            assert event.get_specversion() == "1.0"
            assert event.get_type() == schema["x-cloudevents-type"]
            assert message.key == f"{tenant_id}:{event.get_subject()}".encode()
            validator.validate(event.get_data())
            counts[topic.value] += 1
    return counts

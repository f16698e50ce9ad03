"""Reads every message of a tenant on the six topics with the official CloudEvents SDK."""

import asyncio
import json
from collections import Counter
from pathlib import Path

import jsonschema
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from recupero_events import Topic
from tests.kafka_reading import of_tenant, read_topics

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events" / "schemas"


def validate_tenant_events(bootstrap: str, tenant_id: str) -> Counter[str]:
    """Per topic, how many of the tenant's messages the SDK read and the JSON Schema accepted."""
    counts: Counter[str] = Counter()
    everything = asyncio.run(read_topics(bootstrap, [topic.value for topic in Topic]))
    for topic in Topic:
        schema = json.loads((SCHEMAS / f"{topic.value}.json").read_text())
        validator = jsonschema.Draft202012Validator(schema)
        for record in of_tenant(everything[topic.value], tenant_id):
            message = KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
            event = from_binary(message, JSONFormat())
            assert event.get_specversion() == "1.0"
            assert event.get_type() == schema["x-cloudevents-type"]
            assert message.key == f"{tenant_id}:{event.get_subject()}".encode()
            validator.validate(event.get_data())
            counts[topic.value] += 1
    return counts

"""Generates the published contract documents from the payload models.

`python -m recupero_events.contract docs/events` writes one JSON Schema per topic and an AsyncAPI 3.0
document. The committed copies are checked against a fresh generation by the test suite, so the docs
never drift from the code.
"""

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from recupero_events.codec import (
    CONTENT_TYPE,
    CORRELATION_EXTENSION,
    TENANT_EXTENSION,
    event_type_of,
)
from recupero_events.payloads import PAYLOAD_BY_TOPIC, EventPayload

ASYNCAPI_VERSION = "3.0.0"
CONTRACT_VERSION = "1.0.0"


def _message_name(model: type[EventPayload]) -> str:
    return model.__name__


def _channel_name(topic: str) -> str:
    head, *rest = topic.split("-")
    return head + "".join(part.capitalize() for part in rest)


def json_schemas() -> dict[str, dict[str, Any]]:
    """One standalone JSON Schema (draft 2020-12) per topic, keyed by topic name."""
    schemas: dict[str, dict[str, Any]] = {}
    for topic, model in PAYLOAD_BY_TOPIC.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://recupero.dev/schemas/events/{topic.value}.json"
        schema["x-cloudevents-type"] = event_type_of(model)
        schemas[topic.value] = schema
    return schemas


def _cloudevents_headers() -> dict[str, Any]:
    def header(description: str, **extra: Any) -> dict[str, Any]:
        return {"type": "string", "description": description, **extra}

    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
        "properties": {
            "ce_specversion": header("CloudEvents spec version.", const="1.0"),
            "ce_id": header("Unique event id; consumers deduplicate on it."),
            "ce_source": header("Service that produced the event.", examples=["recupero/ingest"]),
            "ce_type": header("Event type with version suffix."),
            "ce_time": header("When the event happened, RFC 3339 UTC.", format="date-time"),
            "ce_subject": header("Debtor id the event is about."),
            f"ce_{CORRELATION_EXTENSION}": header(
                "Correlation id shared by everything one request or import caused."
            ),
            f"ce_{TENANT_EXTENSION}": header("Tenant that owns the event."),
            "content-type": header("Content type of the value.", const=CONTENT_TYPE),
        },
    }


def asyncapi_document() -> dict[str, Any]:
    models = list(PAYLOAD_BY_TOPIC.values())
    keyed, defs = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, model in PAYLOAD_BY_TOPIC.items():
        name = _message_name(model)
        channel = _channel_name(topic.value)
        assert keyed[(model, "validation")]["$ref"] == f"#/components/schemas/{name}"
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (model.__doc__ or "").strip(),
            "contentType": CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/CloudEventsKafkaHeaders"},
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": "`{tenant_id}:{debtor_id}`"},
                    "bindingVersion": "0.5.0",
                }
            },
            "x-cloudevents-type": event_type_of(model),
        }
        channels[channel] = {
            "address": topic.value,
            "description": f"`{event_type_of(model)}` events, keyed by tenant and debtor.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"{'receive' if model.inbound else 'publish'}{name}"] = {
            "action": "receive" if model.inbound else "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        }
    schemas["CloudEventsKafkaHeaders"] = _cloudevents_headers()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Recupero events",
            "version": CONTRACT_VERSION,
            "description": "Events Recupero's services publish on Apache Kafka, as CloudEvents 1.0 "
            "in Kafka binary content mode. Money is integer minor units plus an ISO-4217 code; "
            "timestamps are UTC.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The dev stack's single-node KRaft broker.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render(target: Path) -> dict[Path, str]:
    """Every contract file's path under `target` and its exact content."""
    files = {
        target / "schemas" / f"{topic}.json": json.dumps(schema, indent=2, ensure_ascii=False)
        + "\n"
        for topic, schema in json_schemas().items()
    }
    files[target / "asyncapi.yaml"] = yaml.safe_dump(
        asyncapi_document(), sort_keys=False, allow_unicode=True, width=100
    )
    return files


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/events")
    for path, content in render(target).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

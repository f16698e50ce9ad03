"""CloudEvents 1.0 in Kafka binary content mode.

Attributes travel as `ce_*` headers, the payload is the JSON value, `content-type` is
`application/json`, and the key is `{tenant_id}:{debtor_id}` so everything about one debtor stays
ordered on one partition. Any CloudEvents SDK reads these messages.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import uuid4

from pydantic import ValidationError

from recupero_events.payloads import PAYLOAD_BY_TOPIC, EventPayload
from recupero_events.topics import Topic

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
# Extension attribute carrying the id that ties together everything one request or import caused.
CORRELATION_EXTENSION = "correlationid"
TENANT_EXTENSION = "tenantid"

Headers = list[tuple[str, bytes]]


class EventDecodeError(ValueError):
    """A message that is not a valid Recupero CloudEvent; consumers dead-letter it."""


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    topic: str
    key: bytes
    value: bytes
    headers: Headers
    event_id: str


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    event_id: str
    source: str
    event_type: str
    time: datetime
    correlation_id: str
    payload: EventPayload


def partition_key(tenant_id: str, debtor_id: str) -> bytes:
    return f"{tenant_id}:{debtor_id}".encode()


def event_type_of(payload_type: type[EventPayload]) -> str:
    return f"{payload_type.event_type}.v{payload_type.version}"


def encode(
    payload: EventPayload,
    *,
    source: str,
    correlation_id: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> EncodedEvent:
    event_id = event_id or str(uuid4())
    return EncodedEvent(
        topic=payload.topic.value,
        key=partition_key(payload.tenant_id, payload.debtor_id),
        value=payload.model_dump_json().encode(),
        headers=cloudevent_headers(
            event_type=event_type_of(type(payload)),
            event_id=event_id,
            source=source,
            time=time or datetime.now(UTC),
            tenant_id=payload.tenant_id,
            debtor_id=payload.debtor_id,
            correlation_id=correlation_id,
        ),
        event_id=event_id,
    )


def cloudevent_headers(
    *,
    event_type: str,
    event_id: str,
    source: str,
    time: datetime,
    tenant_id: str,
    debtor_id: str,
    correlation_id: str | None,
) -> Headers:
    """The binary-mode attributes of one event. The outbox relay calls this at publish time for
    rows that were written without a payload model (bulk imports build their JSON in SQL)."""
    return [
        ("ce_specversion", _SPEC_VERSION),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", event_type.encode()),
        ("ce_time", _ce_time(time)),
        ("ce_subject", debtor_id.encode()),
        (f"ce_{CORRELATION_EXTENSION}", (correlation_id or event_id).encode()),
        (f"ce_{TENANT_EXTENSION}", tenant_id.encode()),
        ("content-type", _CONTENT_TYPE),
    ]


_SPEC_VERSION = SPEC_VERSION.encode()
_CONTENT_TYPE = CONTENT_TYPE.encode()


@lru_cache(maxsize=1024)
def _ce_time(time: datetime) -> bytes:
    # Events written together share their time: a bulk relay formats it once.
    return time.astimezone(UTC).isoformat().replace("+00:00", "Z").encode()


# Upcasters turn a payload of version N into version N+1, keyed by (event type, N). A version whose
# payloads are already valid in the next one needs no entry (DebtImported v1 -> v2).
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upcast(model: type[EventPayload], version: int, data: dict[str, Any]) -> dict[str, Any]:
    while version < model.version:
        data = UPCASTERS.get((model.event_type, version), _unchanged)(data)
        version += 1
    return data


def _unchanged(data: dict[str, Any]) -> dict[str, Any]:
    return data


def _version_of(ce_type: str, model: type[EventPayload]) -> int:
    base, _, suffix = ce_type.rpartition(".v")
    if base != model.event_type or not suffix.isdigit() or not 1 <= int(suffix) <= model.version:
        raise EventDecodeError(
            f"type {ce_type!r} on topic {model.topic.value!r}; expected "
            f"{event_type_of(model)!r} or an earlier version"
        )
    return int(suffix)


def decode(topic: str, value: bytes | None, headers: Headers) -> DecodedEvent:
    try:
        model = PAYLOAD_BY_TOPIC[Topic(topic)]
    except ValueError as exc:
        raise EventDecodeError(f"topic {topic!r} carries no Recupero event") from exc
    attrs = {name: raw.decode("utf-8", "replace") for name, raw in headers}
    for required in ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"):
        if required not in attrs:
            raise EventDecodeError(f"missing CloudEvents header {required!r}")
    if attrs["ce_specversion"] != SPEC_VERSION:
        raise EventDecodeError(f"unsupported specversion {attrs['ce_specversion']!r}")
    version = _version_of(attrs["ce_type"], model)
    try:
        time = datetime.fromisoformat(attrs["ce_time"])
    except ValueError as exc:
        raise EventDecodeError(f"ce_time {attrs['ce_time']!r} is not RFC 3339") from exc
    if time.tzinfo is None:
        raise EventDecodeError(f"ce_time {attrs['ce_time']!r} has no UTC offset")
    if value is None:
        raise EventDecodeError("message has no value")
    try:
        if version == model.version:
            payload = model.model_validate_json(value)
        else:
            payload = model.model_validate(upcast(model, version, json.loads(value)))
    except (ValidationError, ValueError) as exc:
        raise EventDecodeError(f"payload does not match {model.__name__}: {exc}") from exc
    return DecodedEvent(
        event_id=attrs["ce_id"],
        source=attrs["ce_source"],
        event_type=attrs["ce_type"],
        time=time.astimezone(UTC),
        correlation_id=attrs.get(f"ce_{CORRELATION_EXTENSION}", attrs["ce_id"]),
        payload=payload,
    )

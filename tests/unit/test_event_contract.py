"""The published contract: committed docs match the models, AsyncAPI is valid, the envelope
round-trips and any CloudEvents SDK can read it."""

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import uuid4

import jsonschema
import pytest
import yaml
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from recupero_events import (
    ContactDetails,
    DebtDocument,
    DebtImported,
    DocumentKind,
    EventDecodeError,
    Money,
    PostalAddress,
    decode,
    encode,
)
from recupero_events.contract import render

REPO = Path(__file__).resolve().parents[2]
ASYNCAPI_SCHEMA = (
    REPO / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
)


def debt_imported() -> DebtImported:
    return DebtImported(
        tenant_id="acme-bank",
        debtor_id="C-1",
        import_id=uuid4(),
        as_of=datetime(2026, 11, 1, 12, tzinfo=UTC),
        contact=ContactDetails(
            name="Ana Pérez", email="ana@example.com", country="MX", time_zone="America/Mexico_City"
        ),
        documents=[
            DebtDocument(
                document_id="FC-1",
                kind=DocumentKind.INVOICE,
                due_on=date(2026, 10, 1),
                amount=Money(amount_minor=150_075, currency="MXN"),
            )
        ],
        balance=Money(amount_minor=150_075, currency="MXN"),
        oldest_due_on=date(2026, 10, 1),
        change="new",
    )


def test_committed_contract_files_match_the_models() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path, content in render(REPO / "docs" / "events").items()
        if not path.exists() or path.read_text(encoding="utf-8") != content
    ]
    assert not stale, f"regenerate with `make contract`: {stale}"


def test_asyncapi_document_is_valid_asyncapi_3() -> None:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text())
    document = yaml.safe_load((REPO / "docs" / "events" / "asyncapi.yaml").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(document))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    assert {channel["address"] for channel in document["channels"].values()} == {
        "debt-imported",
        "debtor-segmented",
        "action-due",
        "message-sent",
        "promise-registered",
        "payment-received",
        "debt-records",
        "message-status-changed",
        "promise-resolved",
        "agent-task-completed",
    }
    receive = [op for op in document["operations"].values() if op["action"] == "receive"]
    assert [op["channel"]["$ref"] for op in receive] == ["#/channels/debtRecords"]


def test_the_official_schema_catches_a_broken_document() -> None:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text())
    document = yaml.safe_load((REPO / "docs" / "events" / "asyncapi.yaml").read_text())
    document["operations"]["publishDebtImported"]["action"] = "publish"  # AsyncAPI 2 wording
    assert list(jsonschema.Draft7Validator(schema).iter_errors(document))


def test_every_field_of_every_payload_is_described() -> None:
    for path in (REPO / "docs" / "events" / "schemas").glob("*.json"):
        schema = json.loads(path.read_text())
        models = [schema, *schema.get("$defs", {}).values()]
        for model in models:
            for name, prop in model.get("properties", {}).items():
                described = (
                    "description" in prop
                    or "$ref" in prop
                    or any("$ref" in option for option in prop.get("anyOf", []))
                )
                assert described, f"{path.name}: {model.get('title')}.{name} has no description"


def test_envelope_round_trips_and_is_keyed_by_tenant_and_debtor() -> None:
    payload = debt_imported()
    encoded = encode(payload, source="recupero/ingest", correlation_id="corr-1")
    assert encoded.topic == "debt-imported"
    assert encoded.key == b"acme-bank:C-1"
    decoded = decode(encoded.topic, encoded.value, encoded.headers)
    assert decoded.payload == payload
    assert decoded.correlation_id == "corr-1"
    assert decoded.event_id == encoded.event_id


def test_the_official_cloudevents_sdk_reads_our_messages() -> None:
    payload = debt_imported()
    encoded = encode(payload, source="recupero/ingest")
    event = from_binary(
        KafkaMessage(headers=dict(encoded.headers), key=encoded.key, value=encoded.value),
        JSONFormat(),
    )
    assert event.get_id() == encoded.event_id
    assert event.get_type() == "com.recupero.debt.imported.v2"
    assert event.get_source() == "recupero/ingest"
    schema = json.loads((REPO / "docs/events/schemas/debt-imported.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(event.get_data())


def test_consumers_ignore_unknown_fields_but_refuse_wrong_types() -> None:
    encoded = encode(debt_imported(), source="recupero/ingest")
    extended = json.loads(encoded.value)
    extended["added_in_a_later_minor_version"] = True
    assert decode(encoded.topic, json.dumps(extended).encode(), encoded.headers)
    extended["balance"]["amount_minor"] = 1500.75
    with pytest.raises(EventDecodeError, match="amount_minor"):
        decode(encoded.topic, json.dumps(extended).encode(), encoded.headers)


def test_a_postal_address_is_optional_and_its_country_a_code() -> None:
    encoded = encode(debt_imported(), source="recupero/ingest")
    # Events from before the address existed carry no such key: they read as no address.
    older = json.loads(encoded.value)
    del older["contact"]["postal_address"]
    before = decode(encoded.topic, json.dumps(older).encode(), encoded.headers).payload
    assert isinstance(before, DebtImported) and before.contact.postal_address is None

    address = {"street_lines": ["Jr. Lampa 545"], "city": "Lima", "country": "PE"}
    addressed = json.loads(encoded.value)
    addressed["contact"]["postal_address"] = address
    read = decode(encoded.topic, json.dumps(addressed).encode(), encoded.headers).payload
    assert isinstance(read, DebtImported)
    assert read.contact.postal_address == PostalAddress(**address)
    # Same version: adding the optional field bumped nothing.
    assert dict(encoded.headers)["ce_type"] == b"com.recupero.debt.imported.v2"
    addressed["contact"]["postal_address"] = {**address, "country": "Peru"}
    with pytest.raises(EventDecodeError, match="country"):
        decode(encoded.topic, json.dumps(addressed).encode(), encoded.headers)


def test_decode_names_what_is_wrong_with_the_envelope() -> None:
    encoded = encode(debt_imported(), source="recupero/ingest")
    without_id = [(k, v) for k, v in encoded.headers if k != "ce_id"]
    with pytest.raises(EventDecodeError, match="ce_id"):
        decode(encoded.topic, encoded.value, without_id)
    with pytest.raises(EventDecodeError, match=re.escape("expected 'com.recupero.action.due.v1'")):
        decode("action-due", encoded.value, encoded.headers)


def test_an_earlier_version_is_upcast_and_a_later_one_refused() -> None:
    encoded = encode(debt_imported(), source="recupero/ingest")
    as_v1 = [
        (k, b"com.recupero.debt.imported.v1" if k == "ce_type" else v) for k, v in encoded.headers
    ]
    # A v1 payload (no change lists) reads as v2 with empty lists.
    v1_payload = json.loads(encoded.value)
    for added_in_v2 in ("documents_added", "documents_changed", "documents_settled"):
        del v1_payload[added_in_v2]
    v1 = decode(encoded.topic, json.dumps(v1_payload).encode(), as_v1).payload
    assert isinstance(v1, DebtImported)
    assert v1.documents_added == v1.documents_settled == []
    assert v1.balance == debt_imported().balance
    as_v9 = [
        (k, b"com.recupero.debt.imported.v9" if k == "ce_type" else v) for k, v in encoded.headers
    ]
    with pytest.raises(EventDecodeError, match="earlier version"):
        decode(encoded.topic, encoded.value, as_v9)


def test_money_is_never_a_float_and_times_are_aware() -> None:
    with pytest.raises(ValueError):
        Money(amount_minor=10.5, currency="MXN")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        debt_imported().model_copy(update={}).model_validate(
            {**debt_imported().model_dump(), "as_of": datetime(2026, 1, 1)}
        )

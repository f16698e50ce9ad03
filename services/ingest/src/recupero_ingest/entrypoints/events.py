"""Kafka entrypoint: debt records streamed by core systems on `debt-records`."""

from typing import Any

from recupero_events import DebtRecordsSubmitted, DecodedEvent
from recupero_ingest import handlers
from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.domain.profiles import ADDRESS_FIELDS
from recupero_runtime.consumer import Handler
from recupero_runtime.db import Work

CONTACT_FIELDS = ("name", "email", "phone", "country", "time_zone", "locale", *ADDRESS_FIELDS)
ATTRIBUTE_FIELDS = ("zone", "customer_type", "risk_score")


def as_records(message: DebtRecordsSubmitted) -> list[dict[str, Any]]:
    """One canonical record per document, the debtor's fields repeated as in a file row."""
    debtor: dict[str, Any] = {
        "debtor_id": message.debtor_id,
        **{field: getattr(message, field) for field in (*CONTACT_FIELDS, *ATTRIBUTE_FIELDS)},
        "attributes": message.attributes,
    }
    return [{**debtor, **document.model_dump(exclude_none=True)} for document in message.documents]


def debt_records_handler() -> Handler:
    async def handle(event: DecodedEvent, uow: Work[IngestRepository]) -> None:
        message = event.payload
        assert isinstance(message, DebtRecordsSubmitted)
        command = handlers.ImportRecords(
            tenant_id=message.tenant_id,
            records=as_records(message),
            source="kafka",
            mode="incremental",
            as_of=event.time,
        )
        await handlers.import_records(command, uow, event.correlation_id)

    return handle

"""Records that core systems send through the batch API or the `debt-records` topic.

They use the canonical field names and plain formats (ISO dates, decimal point, codes `invoice`,
`installment`, `credit_note`, `debit_note`), and go through the same `RowParser` as a file row,
so a record is accepted or rejected exactly as the same row in a file would be.
"""

from collections.abc import Mapping
from typing import Any

from recupero_ingest.domain.profiles import FIELDS, REQUIRED_FIELDS, ImportProfile
from recupero_ingest.domain.reading import SourceRecord

RECORDS_PROFILE = ImportProfile(
    name="records",
    description="Canonical records from the batch API and the debt-records topic.",
    date_formats=["%Y-%m-%d"],
    columns={field: field for field in FIELDS},
    optional_columns=[field for field in FIELDS if field not in REQUIRED_FIELDS],
    document_types={
        "invoice": "invoice",
        "installment": "installment",
        "credit_note": "credit_note",
        "debit_note": "debit_note",
    },
    phone_check="valid",
)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def record_to_source(number: int, record: Mapping[str, Any]) -> SourceRecord:
    """`number` plays the row number of a file: the record's position in the batch, from 1."""
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        # Not a mapping of custom attributes: kept as one attribute rather than dropped.
        attributes = {"attributes": attributes}
    # A record that does not say what kind of document it is, is an invoice.
    record = {**record, "document_type": record.get("document_type") or "invoice"}
    return SourceRecord(
        row_number=number,
        values=tuple(_text(record.get(field)) for field in FIELDS),
        attributes={str(key): _text(value) for key, value in attributes.items()},
    )

"""Staged rows and rejections as PostgreSQL `COPY ... FROM STDIN` text (the default format).

Parser processes send the parent these bytes rather than pickled rows: pickling Python objects
across a pipe costs more than parsing them, while text goes through as one buffer and PostgreSQL
reads it as fast as it reads any COPY.
"""

import json
import re
from collections.abc import Iterable

from recupero_ingest.domain.rows import DocumentRow, Rejection

NULL = "\\N"
# Free text is escaped only when it holds one of these: tab (the column separator), a line
# break (the row separator) or a backslash (the escape character itself).
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_needs_escaping = re.compile(r"[\\\t\n\r]").search


def _text(value: str | None) -> str:
    return NULL if value is None else value.translate(_ESCAPES)


def staged_line(row: DocumentRow, source_digest: bytes) -> str:
    """One row of the `staged` table, in `consolidation_sql.STAGED_COLUMNS` order, with its
    line end. Country, time zone, locale, kind and currency were validated against fixed
    lists and never need escaping."""
    free: tuple[str | None, ...] = (
        row.debtor_id,
        row.name,
        row.email,
        row.phone,
        row.document_id,
        row.product,
        row.zone,
        row.customer_type,
    )
    if _needs_escaping("\0".join([text for text in free if text])):
        free = tuple(map(_text, free))
    debtor_id, name, email, phone, document_id, product, zone, customer_type = free
    issued_on, attributes, postal_address = row.issued_on, row.attributes, row.postal_address
    return (
        f"{row.row_number}\t{debtor_id}\t{name}\t{email or NULL}\t{phone or NULL}\t"
        # `_value_`, `isoformat()`: an enum's and a date's `format()` cost several times more.
        f"{row.country}\t{row.time_zone}\t{row.locale}\t{document_id}\t{row.kind._value_}\t"
        f"{product or NULL}\t{issued_on.isoformat() if issued_on else NULL}\t"
        f"{row.due_on.isoformat()}\t{row.principal_minor}\t{row.interest_minor}\t"
        f"{row.fees_minor}\t{row.currency}\t{zone or NULL}\t{customer_type or NULL}\t"
        f"{row.risk_score or NULL}\t{_text(json.dumps(attributes)) if attributes else NULL}\t"
        f"\\\\x{source_digest.hex()}\t{_text(postal_address) if postal_address else NULL}\n"
    )


def rejection_line(rejection: Rejection) -> str:
    """One row of `staged_rejections`, in `consolidation_sql.REJECTION_COLUMNS` order."""
    return (
        f"{rejection.row_number}\t{_text(rejection.field)}\t{_text(rejection.value)}\t"
        f"{_text(rejection.reason)}\n"
    )


def encode(lines: Iterable[str]) -> bytes:
    return "".join(lines).encode()

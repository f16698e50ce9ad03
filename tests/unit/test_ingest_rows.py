"""Row validation and consolidation: exact money, clear rejections, credit notes netted."""

from datetime import date

import pytest

from recupero_ingest.domain.consolidation import consolidate
from recupero_ingest.domain.money import AmountError, to_minor_units
from recupero_ingest.domain.rows import DocumentRow, Rejection, parse_row

GOOD = {
    "debtor_id": "C-1",
    "name": "Ana Pérez",
    "email": "ana@example.com",
    "phone": "+52 1 55 1234 5678",
    "country": "mx",
    "time_zone": "America/Mexico_City",
    "document_id": "FC-1",
    "document_type": "invoice",
    "due_on": "2026-10-01",
    "amount": "1500.75",
    "currency": "mxn",
}


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1500.75", "MXN", 150075),
        ("0.10", "USD", 10),
        ("12000", "CLP", 12000),
        ("-3.5", "PEN", -350),
    ],
)
def test_amounts_become_exact_minor_units(text: str, currency: str, minor: int) -> None:
    assert to_minor_units(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("12.345", "MXN", "more than 2 decimals"),
        ("10.5", "CLP", "more than 0"),
        ("abc", "MXN", "not a decimal"),
        ("1", "XYZ", "unsupported currency"),
        ("NaN", "MXN", "not a finite"),
    ],
)
def test_bad_amounts_say_why(text: str, currency: str, message: str) -> None:
    with pytest.raises(AmountError, match=message):
        to_minor_units(text, currency)


def test_a_good_row_is_normalised() -> None:
    row = parse_row(2, GOOD)
    assert isinstance(row, DocumentRow)
    assert (row.amount_minor, row.currency, row.country, row.phone) == (
        150075,
        "MXN",
        "MX",
        "+5215512345678",
    )
    assert row.due_on == date(2026, 10, 1)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("due_on", "01/10/2026", "not a date"),
        ("email", "ana@", "not a valid email address"),
        ("time_zone", "Mars/Olympus", "unknown IANA time zone"),
        ("document_type", "XX", "expected one of"),
        ("amount", "-10", "negative amount on a non-credit document"),
        ("name", "", "required value is empty"),
        ("phone", "5512345678", "E.164"),
    ],
)
def test_a_bad_row_is_rejected_with_row_field_value_and_reason(
    field: str, value: str, reason: str
) -> None:
    rejection = parse_row(7, {**GOOD, field: value})
    assert isinstance(rejection, Rejection)
    assert (rejection.row_number, rejection.field) == (7, field)
    assert reason in rejection.reason


def test_credit_notes_are_netted_and_the_oldest_owing_document_drives_aging() -> None:
    rows = [
        parse_row(2, GOOD),
        parse_row(3, {**GOOD, "document_id": "FC-2", "due_on": "2026-11-01", "amount": "200.00"}),
        parse_row(
            4,
            {
                **GOOD,
                "document_id": "NC-1",
                "document_type": "credit_note",
                "due_on": "2026-09-01",
                "amount": "100.75",
            },
        ),
        parse_row(5, {**GOOD, "document_id": "FC-1"}),
        parse_row(6, {**GOOD, "document_id": "FC-9", "currency": "USD"}),
    ]
    debtors, conflicts = consolidate([r for r in rows if isinstance(r, DocumentRow)])
    [debtor] = debtors
    assert debtor.balance.amount_minor == 150075 + 20000 - 10075
    assert debtor.oldest_due_on == date(2026, 10, 1)
    assert [(c.row_number, c.field) for c in conflicts] == [(5, "document_id"), (6, "currency")]


def test_the_fingerprint_moves_only_when_the_debt_moves() -> None:
    row = parse_row(2, GOOD)
    assert isinstance(row, DocumentRow)
    [first], _ = consolidate([row])
    [same], _ = consolidate([row])
    changed_row = parse_row(2, {**GOOD, "amount": "1500.76"})
    assert isinstance(changed_row, DocumentRow)
    [changed], _ = consolidate([changed_row])
    assert first.fingerprint() == same.fingerprint() != changed.fingerprint()

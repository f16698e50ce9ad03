"""Row validation: exact money, clear rejections, credit notes negative, codes and defaults."""

from datetime import date

import pytest

from recupero_events import DocumentKind, PostalAddress
from recupero_ingest.domain.money import (
    AmountError,
    AmountFormat,
    AmountReader,
    to_minor_units,
)
from recupero_ingest.domain.profiles import FIELDS, ImportProfile, shipped_profiles
from recupero_ingest.domain.reading import SourceRecord
from recupero_ingest.domain.records import RECORDS_PROFILE, record_to_source
from recupero_ingest.domain.rows import (
    DocumentRow,
    Rejection,
    RowParser,
    missing_columns,
    parse_row,
)

GOOD = {
    "debtor_id": "C-1",
    "name": "Ana Pérez",
    "email": "ana@example.com",
    "phone": "+52 55 1234 5678",
    "country": "mx",
    "time_zone": "America/Mexico_City",
    "document_id": "FC-1",
    "document_type": "invoice",
    "due_on": "2026-10-01",
    "amount": "1500.75",
    "currency": "mxn",
}


def record(row_number: int = 7, /, **cells: str) -> SourceRecord:
    return SourceRecord(row_number, tuple(cells.get(field, "") for field in FIELDS))


def bank(**changes: object) -> ImportProfile:
    return shipped_profiles()["banco-andino"].model_copy(update=changes)


# --- money --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1500.75", "MXN", 150075),
        ("0.10", "USD", 10),
        ("12000", "CLP", 12000),
        ("-3.5", "PEN", -350),
        ("12.340", "MXN", 1234),
        ("0.0001", "CLF", 1),
    ],
)
def test_amounts_become_exact_minor_units(text: str, currency: str, minor: int) -> None:
    assert to_minor_units(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("12.345", "MXN", "12.345 has more than 2 decimals for MXN"),
        ("10.5", "CLP", "10.5 has decimals, but CLP has no minor unit"),
        ("abc", "MXN", "not a decimal"),
        ("1", "XYZ", "unsupported currency"),
        ("NaN", "MXN", "not a finite"),
        ("1e3", "MXN", "'1e3' is not an amount"),
    ],
)
def test_bad_amounts_say_why(text: str, currency: str, message: str) -> None:
    with pytest.raises(AmountError, match=message):
        to_minor_units(text, currency)


@pytest.mark.parametrize(
    ("decimal", "thousands", "text", "minor"),
    [
        (",", ".", "1.234.567,89", 123456789),
        (",", ".", "1234567,89", 123456789),
        (",", ".", "-1.234,5", -123450),
        (".", ",", "1,234,567.89", 123456789),
        (",", " ", "1 234 567,89", 123456789),
        (",", " ", "1\u00a0234,89", 123489),
        (".", "'", "1'234'567.89", 123456789),
        (",", None, "0,5", 50),
        (".", None, ".5", 50),
    ],
)
def test_thousands_separators_are_read_where_they_group_thousands(
    decimal: str, thousands: str | None, text: str, minor: int
) -> None:
    reader = AmountReader(AmountFormat(decimal, thousands))
    assert reader.minor_units(text, 2, "PEN") == minor


@pytest.mark.parametrize(
    ("decimal", "thousands", "text"),
    [
        (",", ".", "1.23,4"),
        (",", ".", "12.34"),
        (",", ".", "1.2345"),
        (",", ".", "1..234"),
        (",", ".", ".234"),
        (".", ",", "1,23"),
        (".", None, "1,234.00"),
        (",", None, "1.234,00"),
        (".", None, "１２"),  # full-width digits
        (".", None, "٣"),  # Arabic-Indic digit: Python's int() would read it
        (".", None, "--1"),
        (".", None, "$12"),
    ],
)
def test_a_mistyped_amount_is_refused_not_misread(
    decimal: str, thousands: str | None, text: str
) -> None:
    reader = AmountReader(AmountFormat(decimal, thousands))
    with pytest.raises(AmountError, match="is not an amount"):
        reader.minor_units(text, 2, "PEN")


# --- the generic CSV (the walking skeleton's API, kept) --------------------------------------


def test_a_good_row_is_normalised() -> None:
    row = parse_row(2, GOOD)
    assert isinstance(row, DocumentRow)
    assert (row.amount_minor, row.currency, row.country, row.phone, row.locale) == (
        150075,
        "MXN",
        "MX",
        "+525512345678",
        "es-MX",
    )
    assert row.due_on == date(2026, 10, 1)
    assert (row.principal_minor, row.interest_minor, row.fees_minor) == (150075, 0, 0)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("due_on", "01/10/2026", "'01/10/2026' is not a date in the format %Y-%m-%d"),
        ("email", "ana@", "'ana@' is not a valid email address"),
        ("time_zone", "Mars/Olympus", "'Mars/Olympus' is not an IANA time zone"),
        ("document_type", "XX", "'XX' is not a known document type"),
        ("amount", "-10", "negative amount on an invoice"),
        ("name", "", "required value is empty"),
        ("phone", "55 12", "'55 12' does not make an E.164 phone number"),
        ("country", "XX", "'XX' is not an ISO-3166 alpha-2 country code"),
        ("currency", "PESOS", "unsupported currency 'PESOS'"),
        ("issued_on", "2026-02-30", "'2026-02-30' is not a date"),
        ("due_on", "0024-01-01", "is not a plausible date (year 24)"),
    ],
)
def test_a_bad_row_is_rejected_with_row_field_value_and_reason(
    field: str, value: str, reason: str
) -> None:
    rejection = parse_row(7, {**GOOD, field: value})
    assert isinstance(rejection, Rejection)
    assert (rejection.row_number, rejection.field, rejection.value) == (7, field, value)
    assert reason in rejection.reason


def test_the_generic_columns_are_still_known() -> None:
    assert missing_columns(["debtor_id", "name"]) == [
        "country",
        "time_zone",
        "document_id",
        "document_type",
        "due_on",
        "amount",
        "currency",
    ]


def test_time_zone_and_locale_default_from_the_country() -> None:
    row = parse_row(2, {**GOOD, "country": "PE", "currency": "PEN", "time_zone": "", "phone": ""})
    assert isinstance(row, DocumentRow)
    assert (row.time_zone, row.locale) == ("America/Lima", "es-PE")


# --- profiles: breakdowns, signs, codes, scores ----------------------------------------------


def test_principal_interest_and_fees_add_up_to_the_amount() -> None:
    row = RowParser(bank()).parse(
        record(
            debtor_id="1",
            name="Ana",
            document_id="PR-1",
            document_type="cuota",
            due_on="01/09/2026",
            principal="1.234,56",
            interest="10,5",
            fees="",
        )
    )
    assert isinstance(row, DocumentRow)
    assert (row.kind, row.principal_minor, row.interest_minor, row.fees_minor) == (
        DocumentKind.INSTALLMENT,
        123456,
        1050,
        0,
    )
    assert (row.amount_minor, row.country, row.currency) == (124506, "PE", "PEN")


@pytest.mark.parametrize("amount", ["100,00", "-100,00"])
def test_credit_notes_are_negative_whatever_sign_the_source_uses(amount: str) -> None:
    row = RowParser(bank()).parse(
        record(
            debtor_id="1",
            name="Ana",
            document_id="NC-1",
            document_type="NC",
            due_on="01/09/2026",
            principal=amount,
            interest="1,00",
        )
    )
    assert isinstance(row, DocumentRow)
    assert (row.principal_minor, row.interest_minor, row.amount_minor) == (-10000, -100, -10100)


def test_a_total_that_is_not_the_sum_of_its_parts_is_rejected() -> None:
    parser = RowParser(RECORDS_PROFILE)
    base = {
        "debtor_id": "1",
        "name": "Ana",
        "country": "PE",
        "document_id": "F-1",
        "document_type": "invoice",
        "due_on": "2026-09-01",
        "currency": "PEN",
    }
    rejection = parser.parse(
        record_to_source(4, {**base, "principal": "100", "interest": "5", "amount": "104.99"})
    )
    assert rejection == Rejection(
        4, "amount", "104.99", "104.99 is not principal + interest + fees (105.00 PEN)"
    )
    only_total = parser.parse(record_to_source(5, {**base, "amount": 105.5, "interest": 5}))
    assert isinstance(only_total, DocumentRow)
    assert (only_total.principal_minor, only_total.interest_minor) == (10050, 500)
    too_much = parser.parse(record_to_source(6, {**base, "amount": "5", "fees": "6"}))
    assert isinstance(too_much, Rejection)
    assert too_much.reason == "interest and fees (6.00) exceed the amount (5.00)"


def test_document_codes_match_ignoring_case_and_say_what_is_known() -> None:
    parser = RowParser(bank())
    cells = {"debtor_id": "1", "name": "A", "document_id": "D", "due_on": "01/09/2026"}
    row = parser.parse(record(**cells, document_type=" nd ", principal="1"))
    assert isinstance(row, DocumentRow)
    assert row.kind is DocumentKind.DEBIT_NOTE
    rejection = parser.parse(record(**cells, document_type="FX", principal="1"))
    assert rejection == Rejection(
        7, "document_type", "FX", "'FX' is not a known document type (FC, CUOTA, NC, ND)"
    )


@pytest.mark.parametrize(
    ("score", "kept"),
    [("640", "640"), ("512,50", "512.50"), ("0", "0"), ("1.000", "1000"), ("", None)],
)
def test_risk_scores_from_0_to_1000_are_kept_in_plain_form(score: str, kept: str | None) -> None:
    row = RowParser(bank()).parse(
        record(
            debtor_id="1",
            name="A",
            document_id="D",
            document_type="FC",
            due_on="01/09/2026",
            principal="1",
            risk_score=score,
        )
    )
    assert isinstance(row, DocumentRow)
    assert row.risk_score == kept


@pytest.mark.parametrize("score", ["1000,01", "-1", "alto"])
def test_a_risk_score_outside_the_scale_is_rejected(score: str) -> None:
    rejection = RowParser(bank()).parse(
        record(
            debtor_id="1",
            name="A",
            document_id="D",
            document_type="FC",
            due_on="01/09/2026",
            principal="1",
            risk_score=score,
        )
    )
    assert isinstance(rejection, Rejection)
    assert (rejection.field, rejection.value) == ("risk_score", score)


def test_a_strict_profile_rejects_numbers_outside_the_numbering_plan() -> None:
    parser = RowParser(bank())
    cells = {
        "debtor_id": "1",
        "name": "A",
        "document_id": "D",
        "document_type": "FC",
        "due_on": "01/09/2026",
        "principal": "1",
    }
    good = parser.parse(record(**cells, phone="987 654 321"))
    assert isinstance(good, DocumentRow)
    assert good.phone == "+51987654321"
    rejection = parser.parse(record(**cells, phone="+52 55"))
    assert rejection == Rejection(
        7, "phone", "+52 55", "'+52 55' is not a valid phone number for MX"
    )


def test_record_values_from_json_keep_their_exact_digits() -> None:
    parser = RowParser(RECORDS_PROFILE)
    row = parser.parse(
        record_to_source(
            1,
            {
                "debtor_id": "C-9",
                "name": "Ana",
                "country": "CO",
                "document_id": "F-1",
                "document_type": "installment",
                "due_on": "2026-09-01",
                "amount": 1234567.89,
                "currency": "COP",
                "risk_score": 0.35,
                "attributes": {"canal": "whatsapp", "cuotas": 3},
                "unknown": "ignored",
            },
        )
    )
    assert isinstance(row, DocumentRow)
    assert (row.amount_minor, row.risk_score, row.attributes) == (
        123456789,
        "0.35",
        {"canal": "whatsapp", "cuotas": "3"},
    )


# --- postal addresses ---------------------------------------------------------------------

SPANISH_HEADERS = ImportProfile.model_validate(
    {
        "name": "cartera-ar",
        "columns": {
            **{field: field for field in GOOD},
            "address_line_1": "Dirección",
            "address_line_2": "Piso/Depto",
            "city": "Ciudad",
            "region": "Provincia",
            "postal_code": "Código Postal",
        },
        "optional_columns": ["address_line_2", "region", "postal_code"],
    }
)


def test_a_street_and_a_city_make_a_postal_address_in_the_debtors_country() -> None:
    parsed = RowParser(SPANISH_HEADERS).parse(
        record(
            **GOOD,
            address_line_1="  Av. Corrientes   1234 ",
            address_line_2="Piso 5 B",
            city="Ciudad Autónoma de Buenos Aires",
            region="CABA",
            postal_code="C1043AAZ",
        )
    )
    assert isinstance(parsed, DocumentRow)
    assert parsed.postal_address is not None
    assert PostalAddress.model_validate_json(parsed.postal_address) == PostalAddress(
        street_lines=["Av. Corrientes 1234", "Piso 5 B"],
        city="Ciudad Autónoma de Buenos Aires",
        region="CABA",
        postal_code="C1043AAZ",
        country="MX",  # the row's country: the address gives none of its own
    )


@pytest.mark.parametrize(
    ("cells", "field", "reason"),
    [
        (
            {"address_line_1": "Jr. Lampa 545", "city": "Lima", "address_country": "PX"},
            "address_country",
            "'PX' is not an ISO-3166 alpha-2 country code (AR, MX, PE...)",
        ),
        (
            {"address_line_1": "Jr. Lampa 545", "postal_code": "15001"},
            "city",
            "a postal address needs a city: the row gives a street but no city",
        ),
    ],
)
def test_an_address_a_letter_cannot_use_rejects_the_row_and_says_why(
    cells: dict[str, str], field: str, reason: str
) -> None:
    parsed = RowParser(RECORDS_PROFILE).parse(record(**GOOD, **cells))
    assert parsed == Rejection(7, field, cells.get(field, ""), reason)


def test_without_a_street_there_is_no_address_and_the_row_is_kept() -> None:
    # A province or city column may be there for segmentation: alone it is no address.
    parsed = RowParser(RECORDS_PROFILE).parse(
        record(**GOOD, city="Lima", region="Lima", address_country="pe")
    )
    assert isinstance(parsed, DocumentRow)
    assert parsed.postal_address is None
    found = RowParser(RECORDS_PROFILE).parse(
        record(**GOOD, address_line_1="Jr. Lampa 545", city="Lima", address_country="pe")
    )
    assert isinstance(found, DocumentRow) and found.postal_address is not None
    assert PostalAddress.model_validate_json(found.postal_address).country == "PE"

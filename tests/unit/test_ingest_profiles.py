"""Import profiles: shipped documents load, and a wrong document says where and why."""

import json

import pytest

from recupero_events import DocumentKind
from recupero_ingest.domain.profiles import (
    ImportProfile,
    ProfileError,
    header_key,
    load_profile,
    shipped_profiles,
)

MINIMAL = """
name: banco-x
columns:
  debtor_id: CLIENTE
  name: NOMBRE
  document_id: DOC
  due_on: VENCE
  amount: SALDO
default_document_type: invoice
defaults:
  country: PE
  currency: PEN
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        load_profile(text)
    return caught.value.problems


def test_the_shipped_profiles_load() -> None:
    profiles = shipped_profiles()
    assert set(profiles) == {"generic-csv", "banco-andino", "telco-sur"}
    andino = profiles["banco-andino"]
    assert (andino.encoding, andino.delimiter, andino.decimal_separator) == ("latin-1", ";", ",")
    assert andino.document_kinds()["cuota"] is DocumentKind.INSTALLMENT
    telco = profiles["telco-sur"]
    assert (telco.format, telco.sheet, telco.header_row) == ("xlsx", "Deuda", 3)
    generic = profiles["generic-csv"]
    assert generic.required_headers() == [
        "debtor_id",
        "name",
        "country",
        "time_zone",
        "document_id",
        "document_type",
        "due_on",
        "amount",
        "currency",
    ]


def test_a_minimal_profile_gets_sensible_defaults() -> None:
    profile = load_profile(MINIMAL)
    assert (profile.format, profile.encoding, profile.delimiter) == ("csv", "auto", "auto")
    assert (profile.date_formats, profile.phone_check) == (["%Y-%m-%d"], "valid")


def test_json_documents_are_profiles_too() -> None:
    profile = load_profile(json.dumps(load_profile(MINIMAL).model_dump(mode="json")))
    assert profile == load_profile(MINIMAL)


def test_the_json_schema_describes_every_field() -> None:
    schema = ImportProfile.model_json_schema()
    assert all("description" in field for field in schema["properties"].values())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("colour: blue", "colour: unknown field"),
        ("thousands_separator: ','\ndecimal_separator: ','", "thousands_separator: must differ"),
        ("date_formats: ['%d/%m']", "date_formats[0]: '%d/%m' does not read a whole date"),
        ("date_formats: ['%Y-%m-%d', '%Q']", "date_formats[1]: '%Q' does not read a whole date"),
        ("format: pdf", "format: must be one of 'csv' or 'xlsx'"),
        ("encoding: klingon", "encoding: 'klingon' is not a text encoding Python knows"),
        ("delimiter: ab", "delimiter: must be `auto`, `tab` or a single character"),
        ("phone_check: maybe", "phone_check: must be one of"),
        ("header_row: 0", "header_row: Input should be greater than or equal to 1"),
        ("sheet: Hoja1", "sheet: only applies to xlsx files"),
        ("document_types: {FC: factura}", "document_types.FC: unknown document kind 'factura'"),
        ("document_types: {NO: invoice}", "document_types: code False is not text"),
        ("document_types: {FC: invoice, fc: credit_note}", "document_types.fc: same code as 'FC'"),
        ("defaults: {country: PE, currency: SOL}", "defaults.currency: 'SOL' is not a supported"),
        ("defaults: {country: XX, currency: PEN}", "defaults.country: 'XX' is not an ISO-3166"),
        ("defaults: {country: PE, currency: PEN, time_zone: Lima}", "defaults.time_zone: 'Lima'"),
        ("optional_columns: [debtor_id]", "optional_columns[0]: 'debtor_id' is a required field"),
        ("optional_columns: [email]", "optional_columns[0]: 'email' is not in columns"),
        ("name: Banco X", "name: String should match pattern"),
    ],
)
def test_a_wrong_field_is_named_with_the_reason(change: str, expected: str) -> None:
    found = problems(MINIMAL + change + "\n")
    assert any(problem.startswith(expected) for problem in found), found


def test_a_missing_required_column_mapping_is_named() -> None:
    text = MINIMAL.replace("  due_on: VENCE\n", "").replace("  amount: SALDO\n", "")
    assert problems(text) == [
        "columns.due_on: required",
        "columns.amount: required (or columns.principal, with optional interest and fees)",
    ]


def test_an_unknown_canonical_field_is_named() -> None:
    found = problems(MINIMAL.replace("amount: SALDO", "amont: SALDO"))
    assert found[0].startswith("columns.amont: unknown field; canonical fields are debtor_id,")


def test_defaults_are_required_for_what_the_source_lacks() -> None:
    text = MINIMAL.replace("default_document_type: invoice\n", "").split("defaults:")[0]
    assert problems(text) == [
        "default_document_type: required when columns.document_type is not mapped",
        "defaults.country: required when columns.country is not mapped",
        "defaults.currency: required when columns.currency is not mapped",
    ]


def test_a_country_without_a_known_time_zone_needs_one() -> None:
    text = MINIMAL.replace("country: PE", "country: BR")
    assert problems(text) == [
        "defaults.time_zone: required: no default time zone is known for BR and "
        "columns.time_zone is not mapped"
    ]
    assert load_profile(text + "  time_zone: America/Sao_Paulo\n").defaults.time_zone == (
        "America/Sao_Paulo"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed", "line 1, column 16: expected ',' or ']'"),
        ('{"name": }', "line 1, column 10: Expecting value"),
        ("- a list", "the document must be a mapping of fields"),
        ("decimal_separator: ,", "line 1, column 20:"),
    ],
)
def test_a_document_that_is_not_a_mapping_says_where(text: str, expected: str) -> None:
    assert problems(text)[0].startswith(expected)


def test_words_are_accepted_for_awkward_separators() -> None:
    profile = load_profile(MINIMAL + "delimiter: tab\nthousands_separator: apostrophe\n")
    assert (profile.delimiter, profile.thousands_separator) == ("\t", "'")
    assert load_profile(MINIMAL + "thousands_separator: none\n").thousands_separator is None


def test_headers_match_ignoring_case_accents_and_spaces() -> None:
    assert header_key("  Teléfono  Móvil ") == header_key("TELEFONO MOVIL") == "telefono movil"
    assert header_key("\ufeffNRO_CLIENTE") == "nro_cliente"

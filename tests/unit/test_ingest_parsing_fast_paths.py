"""The parser's shortcuts stage exactly what the general path stages.

Each fast path (splitting quote-free CSV without `csv.reader`, writing JSON and COPY text by
hand, reading an amount text once per currency exponent, checking a debtor's contact cells once
for its consecutive rows) is compared, on generated inputs, with the general code it stands in
for: the same cells, the same bytes, the same rejections at the same rows.
"""

import csv
import io
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recupero_ingest.adapters.copy_text import _json_object, _text, staged_line
from recupero_ingest.domain.profiles import FIELDS, ImportProfile, shipped_profiles
from recupero_ingest.domain.reading import (
    SourceRecord,
    UnreadableFile,
    body_records,
    data_records,
    header_layout,
)
from recupero_ingest.domain.rows import (
    REQUIRED_COLUMNS,
    DocumentRow,
    Rejection,
    RowParser,
    address_json,
)

GENERIC = shipped_profiles()["generic-csv"]
BANK = shipped_profiles()["banco-andino"]
HEADER = list(REQUIRED_COLUMNS)  # the generic CSV's
LAYOUT = header_layout(HEADER, GENERIC, 1)
SETTINGS = settings(deadline=None, max_examples=300)

# Cells as exports write them, and what trips a CSV reader up: delimiters of every profile,
# every line end, blanks, NUL, a tab, backslashes, no-break spaces and non-ASCII letters.
CELL_ALPHABET = st.sampled_from(list("ab1 ,;|\t\r\n\0\\\u00a0é"))
QUOTE_FREE = st.text(CELL_ALPHABET, max_size=400)


def reference_records(text: str, delimiter: str, first_row: int = 2) -> list[SourceRecord]:
    """What `csv.reader` alone makes of the text: the general path."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    return list(data_records(enumerate(reader, start=first_row), LAYOUT))


def fast_records(blocks: list[str], delimiter: str) -> list[SourceRecord]:
    return list(
        body_records(
            blocks, delimiter=delimiter, quotechar='"', layout=LAYOUT, first_row=2, first_line=2
        )
    )


@SETTINGS
@given(text=QUOTE_FREE, delimiter=st.sampled_from([",", ";", "|", "\t"]))
def test_quote_free_text_is_split_into_the_records_csv_reader_reads(
    text: str, delimiter: str
) -> None:
    assert fast_records([text], delimiter) == reference_records(text, delimiter)


def _cut_at_line_ends(text: str, every: int) -> Iterator[str]:
    lines = io.StringIO(text, newline="").readlines()
    for start in range(0, len(lines), every):
        yield "".join(lines[start : start + every])


@SETTINGS
@given(
    text=st.text(st.sampled_from(list('ab,"\r\n')), max_size=300),
    every=st.integers(min_value=1, max_value=4),
)
def test_blocks_read_the_same_once_quotes_show_up(text: str, every: int) -> None:
    """Quote-free blocks are split; from the first quote on, `csv.reader` reads the rest."""
    blocks = list(_cut_at_line_ends(text, every))
    try:
        expected: list[SourceRecord] | str = reference_records(text, ",")
    except csv.Error:
        expected = "unreadable"
    try:
        found: list[SourceRecord] | str = fast_records(blocks, ",")
    except UnreadableFile:
        found = "unreadable"
    assert found == expected


def test_a_cell_over_the_csv_limit_is_refused_at_its_line() -> None:
    previous = csv.field_size_limit(40)  # the module's limit is 128 KiB: a smaller one here
    try:
        blocks = ["C-0,Eva,MX,,FC-0\n", f"C-1,Ana,MX,,FC-1\nC-2,{'x' * 41},MX,,FC-2\n"]
        with pytest.raises(UnreadableFile, match=r"^line 4: field larger than field limit"):
            fast_records(blocks, ",")
        assert len(fast_records([blocks[0], f"C-1,{'x' * 40}\n"], ",")) == 2
    finally:
        csv.field_size_limit(previous)


def test_rows_keep_their_numbers_across_quote_free_and_quoted_blocks() -> None:
    blocks = ["C-1,Ana,MX,FC-1,2026-10-01,10,MXN\n\r\n", 'C-2,"Pérez, Eva",MX,FC-2,x,1,MXN\r']
    records = fast_records(blocks, ",")
    assert [(record.row_number, record.values[1]) for record in records] == [
        (2, "Ana"),
        (4, "Pérez, Eva"),
    ]


@SETTINGS
@given(text=st.text())
def test_copy_text_escapes_as_a_translation_table_does(text: str) -> None:
    table = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
    assert _text(text) == text.translate(table)


@SETTINGS
@given(attributes=st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=4))
def test_attributes_are_written_as_json_dumps_writes_them(attributes: dict[str, str]) -> None:
    assert _json_object(attributes) == json.dumps(attributes)


@SETTINGS
@given(
    street_lines=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=2),
    city=st.text(min_size=1, max_size=20),
    region=st.text(max_size=10),
    postal_code=st.text(max_size=8),
    country=st.sampled_from(["AR", "PE", "MX"]),
)
def test_addresses_are_written_as_json_dumps_writes_them(
    street_lines: list[str], city: str, region: str, postal_code: str, country: str
) -> None:
    expected = json.dumps(
        {
            "street_lines": street_lines,
            "city": city,
            "region": region or None,
            "postal_code": postal_code or None,
            "country": country,
        },
        ensure_ascii=False,
    )
    assert address_json(street_lines, city, region, postal_code, country) == expected


def bank_record(row_number: int, **cells: str) -> SourceRecord:
    base = {
        "debtor_id": "1001",
        "name": "Ana Pérez",
        "phone": "987654321",
        "country": "PE",
        "document_id": f"D-{row_number}",
        "document_type": "CUOTA",
        "due_on": "01/10/2026",
        "principal": "1.234,56",
        "interest": "12,5",
        "fees": "3",
        "currency": "PEN",
    }
    base.update(cells)
    return SourceRecord(row_number, tuple(base.get(field, "") for field in FIELDS))


def parse_each_alone(profile: ImportProfile, records: list[SourceRecord]) -> list[object]:
    """The general path: every record parsed by a parser that has seen no other record."""
    return [RowParser(profile).parse(record) for record in records]


def test_an_amount_text_means_what_the_currency_says_on_every_row() -> None:
    # "12,5" is 1250 cents of a sol and no amount of Chilean pesos (no minor unit); "1.234,56"
    # too. The text is read once per exponent, never once for all currencies.
    records = [
        bank_record(2, currency="PEN"),
        bank_record(3, currency="CLP", interest="12"),
        bank_record(4, currency="PEN"),
        bank_record(5, currency="CLF"),
    ]
    parser = RowParser(BANK)
    parsed = [parser.parse(record) for record in records]
    assert parsed == parse_each_alone(BANK, records)
    first, chilean, again, unidad = parsed
    assert isinstance(first, DocumentRow) and isinstance(again, DocumentRow)
    assert (first.principal_minor, first.interest_minor, first.fees_minor) == (123456, 1250, 300)
    assert (again.principal_minor, again.interest_minor, again.fees_minor) == (123456, 1250, 300)
    assert isinstance(chilean, Rejection)
    assert (chilean.field, chilean.value) == ("principal", "1.234,56")
    assert "CLP has no minor unit" in chilean.reason
    assert isinstance(unidad, DocumentRow)
    assert unidad.principal_minor == 12345600


def test_a_debtors_rows_are_each_checked_whatever_the_row_before_said() -> None:
    """Consecutive rows share their contact check only while their contact cells are the same;
    a row's first problem is still the one reported, at that row."""
    records = [
        bank_record(2),
        bank_record(3, phone="12"),  # a bad phone on the same debtor's next row
        bank_record(4, phone="12", due_on="31/02/2026"),  # a bad date is found before it
        bank_record(5),
        bank_record(6, country="XX"),
        bank_record(7, country="XX", document_id=" "),  # an empty id is found before it
        bank_record(8, country="CO", phone="3001234567", currency="COP"),
        bank_record(9, country="CO", phone="987654321", currency="COP"),
        bank_record(10, email="ana@"),
        bank_record(11),
    ]
    parser = RowParser(BANK)
    parsed = [parser.parse(record) for record in records]
    assert parsed == parse_each_alone(BANK, records)
    problems = {
        result.row_number: result.field for result in parsed if isinstance(result, Rejection)
    }
    assert problems == {
        3: "phone",
        4: "due_on",
        6: "country",
        7: "document_id",
        9: "phone",
        10: "email",
    }
    kept = [result for result in parsed if isinstance(result, DocumentRow)]
    assert [row.phone for row in kept] == [
        "+51987654321",
        "+51987654321",
        "+573001234567",
        "+51987654321",
    ]


def test_staged_text_of_a_row_with_every_field_is_unchanged() -> None:
    parser = RowParser(BANK)
    row = parser.parse(bank_record(2, name="Ana\tPérez", product="Préstamo\\2"))
    assert isinstance(row, DocumentRow)
    row = row._replace(attributes={"CANAL": "SMS", "CUOTAS": "3"})
    line = staged_line(row, bytes(range(16)))
    assert line == (
        "2\t1001\tAna\\tPérez\t\\N\t+51987654321\tPE\tAmerica/Lima\tes-PE\tD-2\tinstallment\t"
        "Préstamo\\\\2\t\\N\t2026-10-01\t123456\t1250\t300\tPEN\t\\N\t\\N\t\\N\t"
        '{"CANAL": "SMS", "CUOTAS": "3"}\t\\\\x000102030405060708090a0b0c0d0e0f\t\\N\n'
    )

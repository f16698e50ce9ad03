"""Reading files: encodings, delimiters, headers, blank lines, row numbers, bounded memory."""

import io
from datetime import date

import pytest

from recupero_events import DocumentKind
from recupero_ingest.domain import reading
from recupero_ingest.domain.profiles import FIELDS, ImportProfile, shipped_profiles
from recupero_ingest.domain.reading import SourceRecord, UnreadableFile, iter_records
from recupero_ingest.domain.rows import DocumentRow, RowParser

GENERIC = shipped_profiles()["generic-csv"]
HEADER = "debtor_id,name,country,time_zone,document_id,document_type,due_on,amount,currency"
ROW = "C-1,{name},MX,America/Mexico_City,FC-{n},invoice,2026-10-01,10.00,MXN"


def records(data: bytes, profile: ImportProfile = GENERIC) -> list[SourceRecord]:
    return list(iter_records(io.BytesIO(data), profile))


def value(record: SourceRecord, field: str) -> str:
    return record.values[FIELDS.index(field)]


def csv_file(*names: str, newline: str = "\n", header: str = HEADER) -> str:
    lines = [header, *(ROW.format(name=name, n=n) for n, name in enumerate(names))]
    return newline.join(lines) + newline


def test_the_header_is_row_1_and_blank_lines_keep_their_numbers() -> None:
    ana, luis = csv_file("Ana", "Luis").splitlines()[1:]
    text = f"{HEADER}\n{ana}\n\n,,,,,,,,\n{luis}\n"
    found = records(text.encode())
    assert [(record.row_number, value(record, "name")) for record in found] == [
        (2, "Ana"),
        (5, "Luis"),
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_any_line_ending_reads_the_same(newline: str) -> None:
    found = records(csv_file("Ana", "Luis", newline=newline).encode())
    assert [value(record, "name") for record in found] == ["Ana", "Luis"]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_the_delimiter_is_found_from_the_header_line(delimiter: str) -> None:
    text = csv_file("Pérez, Ana").replace(",", delimiter).replace(f"Pérez{delimiter} ", "Pérez, ")
    [record] = records(text.encode())
    assert value(record, "name") == "Pérez, Ana"


def test_latin1_without_declaring_it_is_read_as_latin1() -> None:
    [record] = records(csv_file("Peña Núñez").encode("latin-1"))
    assert value(record, "name") == "Peña Núñez"


def test_windows_1252_characters_latin1_lacks_are_read() -> None:
    [record] = records(csv_file("Ana “la Jefa” O’Neil").encode("cp1252"))
    assert value(record, "name") == "Ana “la Jefa” O’Neil"


def test_encoding_is_decided_at_the_first_non_ascii_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reading, "_CHUNK", 7)  # decisions across chunk boundaries
    names = ["Ana"] * 20 + ["Peña", "Ñandú"]
    assert [value(r, "name") for r in records(csv_file(*names).encode("latin-1"))] == names
    assert [value(r, "name") for r in records(csv_file(*names).encode("utf-8"))] == names


def test_a_latin1_letter_cut_by_a_chunk_boundary_is_still_latin1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = csv_file("Ana", "Peñalosa").encode("latin-1")
    # 0xf1 (ñ) opens a four-byte UTF-8 sequence: let the chunk end right after it.
    monkeypatch.setattr(reading, "_CHUNK", data.index(b"\xf1") + 1)
    assert [value(r, "name") for r in records(data)] == ["Ana", "Peñalosa"]
    monkeypatch.setattr(reading, "_CHUNK", len(data) - 1)
    assert [value(r, "name") for r in records(data[:-1] + b"\xf1")][-1] == "Peñalosa"


def test_a_file_that_turns_out_not_to_be_utf8_says_the_byte_offset() -> None:
    data = csv_file("Peña", "Ana").encode("utf-8") + csv_file("Núñez", header="").encode("latin-1")
    offset = data.index(b"N\xfa") + 1
    with pytest.raises(UnreadableFile, match=rf"^byte {offset} \(0xfa\) is not valid UTF-8"):
        records(data)


def test_byte_order_marks_decide_the_encoding() -> None:
    for data in (
        b"\xef\xbb\xbf" + csv_file("Peña").encode("utf-8"),
        csv_file("Peña").encode("utf-16"),
    ):
        [record] = records(data)
        assert value(record, "name") == "Peña"


def test_an_empty_file_says_so() -> None:
    with pytest.raises(UnreadableFile, match="the file is empty"):
        records(b"")
    with pytest.raises(UnreadableFile, match="no header line"):
        records(b"\n\n\r\n")


def test_missing_headers_are_named_with_those_found() -> None:
    with pytest.raises(UnreadableFile) as caught:
        records(b"debtor_id;nombre;pais\nC-1;Ana;MX\n")
    message = str(caught.value)
    assert message.startswith(
        "the header (row 1) lacks 'name', 'country', 'time_zone', 'document_id', "
        "'document_type', 'due_on', 'amount', 'currency', which profile 'generic-csv' requires; "
        "it has 'debtor_id', 'nombre', 'pais'"
    )


def test_a_column_the_profile_reads_twice_is_ambiguous() -> None:
    with pytest.raises(UnreadableFile, match="has 'name' more than once"):
        records((HEADER + ",Name\n").encode())


def test_optional_columns_may_be_left_out_and_header_case_does_not_count() -> None:
    [record] = records(csv_file("Ana", header=HEADER.upper()).encode())
    assert (value(record, "email"), value(record, "name")) == ("", "Ana")


def test_title_rows_above_the_header_are_skipped() -> None:
    profile = GENERIC.model_copy(update={"header_row": 3})
    text = "Cartera al 31/10/2026\nBanco X\n" + csv_file("Ana")
    [record] = records(text.encode(), profile)
    assert record.row_number == 4


def test_a_short_row_is_padded_and_a_long_row_cut() -> None:
    text = HEADER + "\nC-1,Ana,MX\nC-2,Luis,MX,America/Lima,F,invoice,2026-01-01,1,PEN,x,y\n"
    short, long = records(text.encode())
    assert (value(short, "name"), value(short, "currency")) == ("Ana", "")
    assert value(long, "currency") == "PEN"


def test_records_stream_without_reading_the_whole_file() -> None:
    class CountingStream(io.BytesIO):
        read_so_far = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            self.read_so_far += len(data)
            return data

    stream = CountingStream(csv_file(*(["Ana"] * 100_000)).encode())
    found = iter_records(stream, GENERIC)
    first = next(found)
    assert value(first, "name") == "Ana"
    assert stream.read_so_far <= 2 * reading._CHUNK < len(stream.getvalue())
    assert sum(1 for _ in found) == 99_999


def test_a_record_parses_into_a_row_with_the_right_types() -> None:
    [record] = records(csv_file("Ana").encode())
    row = RowParser(GENERIC).parse(record)
    assert isinstance(row, DocumentRow)
    assert row == DocumentRow(
        row_number=2,
        debtor_id="C-1",
        name="Ana",
        email=None,
        phone=None,
        country="MX",
        time_zone="America/Mexico_City",
        locale="es-MX",
        document_id="FC-0",
        kind=DocumentKind.INVOICE,
        product=None,
        issued_on=None,
        due_on=date(2026, 10, 1),
        principal_minor=1000,
        interest_minor=0,
        fees_minor=0,
        amount_minor=1000,
        currency="MXN",
        zone=None,
        customer_type=None,
        risk_score=None,
        attributes={},
    )
    assert type(row.kind) is DocumentKind and type(row.amount_minor) is int

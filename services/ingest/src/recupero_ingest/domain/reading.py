"""Streaming readers: a CSV or XLSX file in, `SourceRecord`s out, in bounded memory.

Each record carries its row number as a spreadsheet shows it (the header is row 1, or the
profile's `header_row`) and the cell texts of the canonical fields in `FIELDS` order ("" where the
profile maps no column or the row is short), then the attribute columns. What makes the whole
file unusable (unknown encoding, missing columns, not a workbook) raises `UnreadableFile`;
everything about single rows is left to `RowParser`, which rejects rows, never files.
"""

import codecs
import csv
import hashlib
import io
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from encodings import cp1252
from itertools import chain, count, islice
from typing import Any, BinaryIO, NamedTuple

from recupero_ingest.domain.profiles import FIELDS, ImportProfile, header_key

_CHUNK = 1 << 20
_LONGEST_LINE = 16 << 20
_SNIFFED_DELIMITERS = (",", ";", "\t", "|")
_NO_ATTRIBUTES: tuple[str, ...] = ()


class UnreadableFile(ValueError):
    """The file as a whole cannot be imported (encoding, header, format). Raised before the
    first record, or where the problem shows (a bad byte deep in the file): the caller then
    discards what it read."""


class SourceRecord(NamedTuple):
    """One row of a source, before validation."""

    row_number: int
    values: tuple[str, ...]
    """Cell texts of the canonical fields, in `profiles.FIELDS` order."""
    attributes: tuple[str, ...] | Mapping[str, str] = _NO_ATTRIBUTES
    """Cell texts of the profile's `attributes` columns in their order, or (for records that
    come from an API) the custom attributes by name."""


class SourceDigest:
    """Digests of source records read with one profile: the same cells under the same profile
    (and the same parsing rules: `VERSION`) parse into the same row. Consolidation compares them
    to skip debtors whose rows did not change since the import that set their state."""

    VERSION = 1

    def __init__(self, profile: ImportProfile) -> None:
        key = hashlib.blake2b(
            f"{self.VERSION}\x1e{profile.model_dump_json()}".encode(), digest_size=32
        ).digest()
        # Copying a keyed hash costs less than keying a new one (the key is a block to hash).
        self._keyed = hashlib.blake2b(digest_size=16, key=key)

    def __call__(self, record: SourceRecord) -> bytes:
        text = "\x1f".join(record.values)
        attributes = record.attributes
        if attributes:
            text += "\x1e" + (
                "\x1f".join(attributes)
                if isinstance(attributes, tuple)
                else json.dumps(dict(attributes), sort_keys=True)
            )
        digest = self._keyed.copy()
        # surrogatepass: JSON from an API may carry a lone surrogate; it still digests.
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.digest()


# --- text decoding ------------------------------------------------------------------------

# Windows-1252, with its five unassigned bytes read as Latin-1 (as every spreadsheet does).
_WINDOWS_1252 = "".join(
    chr(index) if char == "\ufffe" else char for index, char in enumerate(cp1252.decoding_table)
)


class _Decoder:
    """An incremental decoder that knows how many bytes it has consumed, for error offsets."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._decoder = codecs.getincrementaldecoder(name)("strict")

    def pending(self) -> int:
        return len(self._decoder.getstate()[0])

    def decode(self, data: bytes, final: bool) -> str:
        return self._decoder.decode(data, final)


class _Utf8OrWindows1252(_Decoder):
    """`encoding: auto` without a byte-order mark: UTF-8 until the first non-ASCII character
    shows the file is not UTF-8, then Windows-1252 (a superset of Latin-1's printable range)."""

    def __init__(self) -> None:
        super().__init__("utf-8")
        self._decided = False

    def decode(self, data: bytes, final: bool) -> str:
        if self.name == "windows-1252":
            return codecs.charmap_decode(data, "strict", _WINDOWS_1252)[0]
        held = self._decoder.getstate()[0]
        if self._decided or (data.isascii() and not held):
            return self._decoder.decode(data, final)
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            if not (held + data)[: exc.start].isascii():
                raise  # UTF-8 characters before the bad byte: the file mixes encodings
            self.name = "windows-1252"
            return codecs.charmap_decode(held + data, "strict", _WINDOWS_1252)[0]
        # Decided once a whole non-ASCII character came through; an incomplete one may still
        # turn out not to be UTF-8 in the next chunk.
        self._decided = not text.isascii()
        return text

    def pending(self) -> int:
        return 0 if self.name == "windows-1252" else super().pending()


def _decoder(encoding: str, head: bytes) -> tuple[_Decoder, str]:
    """The decoder for `encoding` and how to name it in error messages."""
    if encoding != "auto":
        return _Decoder(encoding), encoding
    if head.startswith(codecs.BOM_UTF8):
        return _Decoder("utf-8-sig"), "UTF-8 (the file starts with a UTF-8 byte-order mark)"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _Decoder("utf-16"), "UTF-16 (the file starts with a UTF-16 byte-order mark)"
    return _Utf8OrWindows1252(), "UTF-8"


def _blocks(stream: BinaryIO, encoding: str) -> Iterator[str]:
    """The file's text, a megabyte at a time, each block ending at a line end (\r, \n or
    \r\n: a quoted cell may hold other line separators)."""
    chunk = stream.read(_CHUNK)
    if not chunk:
        raise UnreadableFile("the file is empty: expected a header line")
    decoder, described = _decoder(encoding, chunk)
    consumed = 0
    pending = ""
    while True:
        final = not chunk
        held = decoder.pending()
        try:
            text = pending + decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            offset = consumed - held + exc.start
            byte = exc.object[exc.start : exc.start + 1].hex()
            if isinstance(decoder, _Utf8OrWindows1252):
                raise UnreadableFile(
                    f"byte {offset} (0x{byte}) is not valid UTF-8, although the file's first "
                    "non-ASCII characters were: it mixes encodings, or declare the profile's "
                    "encoding (latin-1, cp1252...)"
                ) from None
            raise UnreadableFile(
                f"byte {offset} (0x{byte}) is not valid {described}; is the profile's "
                "encoding right?"
            ) from None
        consumed += len(chunk)
        if final:
            if text:
                yield text
            return
        cut = max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1))
        if cut < 0:
            if len(text) > _LONGEST_LINE:
                raise UnreadableFile(
                    f"no line break in {len(text) >> 20} MB of text before byte {consumed}: "
                    "this is not a delimited text file"
                )
            pending = text
        else:
            pending = text[cut + 1 :]
            yield text[: cut + 1]
        chunk = stream.read(_CHUNK)


def _split_lines(block: str) -> io.StringIO:
    return io.StringIO(block, newline="")


# --- header ---------------------------------------------------------------------------------


class Layout(NamedTuple):
    """Where a file's header puts the profile's fields and attributes."""

    width: int
    values: Callable[[Sequence[Any]], tuple[Any, ...]]
    attributes: Callable[[Sequence[Any]], tuple[Any, ...]] | None


def _getter(indices: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    if len(indices) == 1:
        index = indices[0]
        return lambda cells: (cells[index],)
    return operator.itemgetter(*indices)


def header_layout(header: Sequence[str], profile: ImportProfile, row_number: int) -> Layout:
    positions: dict[str, int] = {}
    repeated: set[str] = set()
    for index, text in enumerate(header):
        key = header_key(text)
        if key in positions:
            repeated.add(key)
        elif key:
            positions[key] = index
    missing = [text for text in profile.required_headers() if header_key(text) not in positions]
    if missing:
        found = ", ".join(repr(text) for text in header if text.strip())
        if len(found) > 600:
            found = found[:600] + "..."
        raise UnreadableFile(
            f"the header (row {row_number}) lacks {', '.join(repr(text) for text in missing)}, "
            f"which profile {profile.name!r} requires; it has {found or 'no column names'}"
        )
    wanted = [*profile.columns.values(), *profile.attributes]
    ambiguous = sorted({text for text in wanted if header_key(text) in repeated})
    if ambiguous:
        raise UnreadableFile(
            f"the header (row {row_number}) has {', '.join(map(repr, ambiguous))} more than "
            "once: the profile cannot tell which column to read"
        )
    width = len(header)
    # Fields the profile does not map (or a file leaves out) read the empty cell appended to
    # every row at index `width`.
    indices = []
    for field in FIELDS:
        column = profile.columns.get(field)
        indices.append(positions.get(header_key(column), width) if column else width)
    attribute_indices = [positions[header_key(text)] for text in profile.attributes]
    return Layout(
        width=width,
        values=_getter(indices),
        attributes=_getter(attribute_indices) if attribute_indices else None,
    )


# --- CSV ------------------------------------------------------------------------------------


def _sniff(lines: list[str], profile: ImportProfile) -> str:
    """The candidate delimiter that splits the header line into the most cells."""
    best, best_cells = ",", 1
    for delimiter in _SNIFFED_DELIMITERS:
        reader = csv.reader(lines, delimiter=delimiter, quotechar=profile.quotechar)
        try:
            header = next((row for row in islice(reader, profile.header_row - 1, None) if row), [])
        except csv.Error:
            continue
        if len(header) > best_cells:
            best, best_cells = delimiter, len(header)
    return best


class CsvBody(NamedTuple):
    """A delimited file past its header line: all that reading its rows needs."""

    delimiter: str
    header: list[str]
    header_row: int
    first_line: int
    """Line number (1-based, as a text editor counts) where `blocks` starts."""
    blocks: Iterator[str]
    """The text after the header, in blocks that end at a line end."""


class _LineCursor:
    """Lines of text blocks, read one at a time until the rest is wanted a block at a time."""

    def __init__(self, blocks: Iterator[str]) -> None:
        self._blocks = blocks
        self._current = io.StringIO("")

    def lines(self) -> Iterator[str]:
        for block in self._blocks:
            self._current = _split_lines(block)
            # Not `yield from`: closing this generator would close the block for `rest`.
            for line in self._current:  # noqa: UP028
                yield line

    def rest(self) -> Iterator[str]:
        if tail := self._current.read():
            yield tail
        yield from self._blocks


def csv_body(stream: BinaryIO, profile: ImportProfile) -> CsvBody:
    """Reads up to the header line (sniffing the delimiter if the profile asks to)."""
    cursor = _LineCursor(_blocks(stream, profile.encoding))
    lines = cursor.lines()
    delimiter = profile.delimiter
    probe: list[str] = []
    if delimiter == "auto":
        probe = list(islice(lines, profile.header_row + 20))
        delimiter = _sniff(probe, profile)
    reader = csv.reader(chain(probe, lines), delimiter=delimiter, quotechar=profile.quotechar)
    try:
        header, header_row = _find_header(enumerate(reader, start=1), profile)
    except csv.Error as exc:
        raise UnreadableFile(f"line {reader.line_num}: {exc}") from None
    # The reader pulls one line at a time: what it did not take of the probe comes first.
    unread = "".join(probe[reader.line_num :])
    return CsvBody(
        delimiter=delimiter,
        header=header,
        header_row=header_row,
        first_line=reader.line_num + 1,
        blocks=chain([unread] if unread else [], cursor.rest()),
    )


def _unquoted_rows(block: str, delimiter: str) -> list[list[str]] | None:
    """The rows of a block of whole lines as `csv.reader` reads them, when that is a plain
    split: the block has no quote character (the caller checks) and no line is longer than the
    csv module's field limit (which `csv.reader` would refuse). None otherwise. A line ends at
    \r, \n or \r\n, as `_split_lines` cuts it; an empty line is one row of one empty cell
    where `csv.reader` gives no cell at all (both are blank to `data_records`)."""
    if "\r" in block:
        block = block.replace("\r\n", "\n").replace("\r", "\n")
    lines = block.split("\n")
    if not lines[-1]:
        lines.pop()  # the block ends with a line end (else its last line has none)
    limit = csv.field_size_limit()
    if len(block) > limit and max(map(len, lines)) > limit:
        return None
    return [line.split(delimiter) for line in lines]


def body_records(
    blocks: Iterable[str],
    *,
    delimiter: str,
    quotechar: str,
    layout: Layout,
    first_row: int,
    first_line: int,
) -> Iterator[SourceRecord]:
    """The records of (a part of) a CSV body that starts at a record boundary.

    Rows are numbered as a spreadsheet numbers them: one per record, blank ones included (a
    quoted cell's line breaks stay inside its row). Blocks are split without `csv.reader` (at
    twice its speed) as long as no quote character has shown up: until then, every line end
    ends a record.
    """
    blocks = iter(blocks)
    row, line = first_row, first_line
    for block in blocks:
        rows = None if quotechar in block else _unquoted_rows(block, delimiter)
        if rows is None:
            blocks = chain([block], blocks)
            break
        yield from data_records(zip(count(row), rows), layout)
        row += len(rows)
        line += len(rows)
    else:
        return
    reader = csv.reader(
        chain.from_iterable(map(_split_lines, blocks)), delimiter=delimiter, quotechar=quotechar
    )
    try:
        yield from data_records(enumerate(reader, start=row), layout)
    except csv.Error as exc:  # e.g. a cell over the csv module's 128 KiB limit
        raise UnreadableFile(f"line {line - 1 + reader.line_num}: {exc}") from None


class BodySlice(NamedTuple):
    """Whole records of a CSV body: they can be read on their own, in another process."""

    text: str
    first_row: int
    first_line: int
    records: int
    """Records in `text` (blank lines included), so the next slice knows its first row."""
    lines: int


class BodyRest(NamedTuple):
    """The body from here on, which must be read in one pass: it could not be cut safely."""

    blocks: Iterator[str]
    first_row: int
    first_line: int


_UNCLOSED_QUOTE = "unexpected end of data"


def _line_ends(text: str) -> int:
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return ends if text.endswith(("\n", "\r")) else ends + 1


def body_slices(body: CsvBody, quotechar: str) -> Iterator[BodySlice | BodyRest]:
    """Cuts the body into slices of whole records, each block (about a megabyte) a slice.

    Without the quote character, a block's lines are its records. A block with quotes is read
    by a strict CSV reader: if it ends inside a quoted cell (a quoted line break) the next block
    is added to it; if it holds quoting that only the lenient reader accepts (`"a"b`), records
    cannot be told apart from text here, and the rest of the body is one `BodyRest`.
    """
    row, line = body.header_row + 1, body.first_line
    pending = ""
    for block in body.blocks:
        text = pending + block
        if quotechar not in text:
            records = lines = _line_ends(text)
        else:
            reader = csv.reader(
                _split_lines(text), delimiter=body.delimiter, quotechar=quotechar, strict=True
            )
            try:
                records = sum(1 for _ in reader)
            except csv.Error as exc:
                if str(exc) == _UNCLOSED_QUOTE and len(text) < _LONGEST_LINE:
                    pending = text
                    continue
                yield BodyRest(chain([text], body.blocks), row, line)
                return
            lines = reader.line_num
        pending = ""
        yield BodySlice(text, row, line, records, lines)
        row, line = row + records, line + lines
    if pending:
        yield BodyRest(iter([pending]), row, line)


def _find_header(
    rows: Iterator[tuple[int, list[Any]]], profile: ImportProfile
) -> tuple[list[str], int]:
    for row_number, cells in rows:
        if row_number >= profile.header_row and any(cells):
            return ["" if cell is None else str(cell) for cell in cells], row_number
    raise UnreadableFile(f"the file has no header line (looked from row {profile.header_row} on)")


def data_records(rows: Iterator[tuple[int, list[Any]]], layout: Layout) -> Iterator[SourceRecord]:
    """The rows after the header as records, blank rows skipped."""
    width, values, attributes = layout
    padding = [""] * width
    new = tuple.__new__
    for row_number, cells in rows:
        if not cells or not (cells[0] or any(cells)):
            continue  # a blank line
        if len(cells) != width:
            cells = (cells + padding)[:width]
        cells.append("")
        yield new(
            SourceRecord,
            (
                row_number,
                values(cells),
                _NO_ATTRIBUTES if attributes is None else attributes(cells),
            ),
        )


def _records(
    rows: Iterator[tuple[int, list[Any]]], profile: ImportProfile
) -> Iterator[SourceRecord]:
    header, row_number = _find_header(rows, profile)
    yield from data_records(rows, header_layout(header, profile, row_number))


# --- XLSX -----------------------------------------------------------------------------------


def _cell_text(value: Any, decimal_separator: str) -> str:
    """A cell as text: numbers as Excel shows them (15 significant digits, never float
    artefacts such as 0.30000000000000004), dates as ISO dates."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        text = format(Decimal(format(value, ".15g")), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text.replace(".", decimal_separator) if decimal_separator != "." else text
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _xlsx_rows(stream: BinaryIO, profile: ImportProfile) -> Iterator[tuple[int, list[str]]]:
    import zipfile

    from openpyxl import load_workbook  # type: ignore[import-untyped]

    head = stream.read(8)
    if not head:
        raise UnreadableFile("the file is empty: expected an XLSX workbook")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnreadableFile("this is an old Excel .xls file: save it as .xlsx (or CSV)")
    if not head.startswith(b"PK"):
        raise UnreadableFile("this is not an XLSX workbook (it is not a zip archive)")
    if not stream.seekable():
        # A workbook is a zip archive: it needs random access.
        stream = io.BytesIO(head + stream.read())
    else:
        stream.seek(stream.tell() - len(head))
    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise UnreadableFile(f"this is not a readable XLSX workbook ({exc})") from None
    except Exception as exc:  # openpyxl raises many types on malformed XML
        raise UnreadableFile(f"this is not a readable XLSX workbook ({exc})") from None
    try:
        sheets = workbook.worksheets
        sheet = profile.sheet
        if sheet is None:
            worksheet = sheets[0] if sheets else None
        elif isinstance(sheet, int):
            worksheet = sheets[sheet - 1] if sheet <= len(sheets) else None
        else:
            worksheet = next((ws for ws in sheets if ws.title == sheet), None)
        if worksheet is None or not hasattr(worksheet, "iter_rows"):
            names = ", ".join(repr(ws.title) for ws in sheets)
            raise UnreadableFile(f"the workbook has no sheet {sheet!r}; it has {names}")
        # Some writers record a wrong sheet size: read every row the sheet has instead.
        worksheet.reset_dimensions()
        decimal = profile.decimal_separator
        try:
            for row_number, row in enumerate(worksheet.iter_rows(values_only=True), start=1):
                yield row_number, [_cell_text(value, decimal) for value in row]
        except UnreadableFile:
            raise
        except Exception as exc:
            raise UnreadableFile(f"the workbook's sheet cannot be read ({exc})") from None
    finally:
        workbook.close()


# --- entry point ----------------------------------------------------------------------------


def iter_records(stream: BinaryIO, profile: ImportProfile) -> Iterator[SourceRecord]:
    """The data rows of a file in `profile`'s format, one at a time, blank rows skipped.

    Raises `UnreadableFile` (before the first record, or at the row where the file turns out
    to be unreadable) when the file as a whole cannot be read.
    """
    if profile.format == "xlsx":
        yield from _records(_xlsx_rows(stream, profile), profile)
        return
    body = csv_body(stream, profile)
    yield from body_records(
        body.blocks,
        delimiter=body.delimiter,
        quotechar=profile.quotechar,
        layout=header_layout(body.header, profile, body.header_row),
        first_row=body.header_row + 1,
        first_line=body.first_line,
    )

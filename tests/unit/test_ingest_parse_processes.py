"""Parsing a CSV upload in pool processes, slice by slice, stages exactly what one thread does:
the same rows, the same rejections at the same row numbers, the same errors, whatever the
line ends, blank lines, quoting and quoted line breaks, wherever the slices are cut."""

import multiprocessing
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from recupero_ingest.adapters.partitions import partition_of
from recupero_ingest.adapters.streaming import Batch, parse_chunks
from recupero_ingest.domain import reading
from recupero_ingest.domain.profiles import ImportProfile, load_profile, shipped_profiles
from recupero_ingest.domain.reading import UnreadableFile

GENERIC = shipped_profiles()["generic-csv"]
HEADER = "debtor_id,name,country,time_zone,document_id,document_type,due_on,amount,currency"


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks (and so slices) of a few rows: every kind of line is cut around somewhere.
    monkeypatch.setattr(reading, "_CHUNK", 300)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def staged(
    data: bytes, pool: ProcessPoolExecutor | None, profile: ImportProfile = GENERIC
) -> tuple[list[str], list[str], int, int]:
    """(staged rows, rejections, records, batches) as the COPY would receive them."""
    batches: list[Batch] = []

    async def keep(batch: Batch) -> None:
        batches.append(batch)

    total = await parse_chunks(_chunks(data), profile, keep, batch_size=50, pool=pool)
    rows = b"".join(part for batch in batches for part in batch.rows).decode().splitlines()
    rejections = b"".join(batch.rejections for batch in batches).decode().splitlines()
    return rows, rejections, total, len(batches)


def portfolio(rows: int, newline: str = "\n") -> str:
    lines = [HEADER]
    for n in range(rows):
        due = "2026-02-31" if n % 17 == 5 else "2026-10-01"  # an impossible date: rejected
        kind = "credit_note" if n % 11 == 3 else "invoice"
        name = f"Cliente {n}"
        if n % 13 == 7:
            name = f'"Pérez, {n}"'  # quoted: holds the delimiter
        if n % 29 == 2:
            name = f'"Línea uno\nlínea ""dos"" {n}"'  # a quoted line break
        if n % 31 == 4:
            name = f"Tab\there \\ {n}"  # COPY's own special characters
        lines.append(f"C-{n // 3},{name},MX,America/Mexico_City,FC-{n},{kind},{due},{n}.50,MXN")
        if n % 37 == 9:
            lines.append("")  # a blank line still counts as a row
    return newline.join(lines) + newline


def row_numbers(lines: list[str]) -> list[int]:
    return [int(line.split("\t", 1)[0]) for line in lines]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
async def test_slices_in_processes_stage_what_one_thread_stages(
    pool: ProcessPoolExecutor, newline: str
) -> None:
    data = portfolio(400, newline).encode()
    alone = await staged(data, None)
    rows, rejections, total, batches = await staged(data, pool)
    assert (rows, rejections, total) == alone[:3]
    assert batches > 20  # it was indeed cut into many slices
    assert total == 400 and len(rejections) == len(range(5, 400, 17))
    # Row numbers as a spreadsheet shows them: header row 1, quoted line breaks inside their
    # row, blank lines counted.
    assert row_numbers(rejections)[:3] == [7, 25, 42]
    blank = len(range(9, 400, 37))
    assert sorted(row_numbers(rows) + row_numbers(rejections))[-1] == 1 + 400 + blank
    quoted_break = next(line for line in rows if "FC-2\t" in line)
    assert 'Línea uno\\nlínea "dos" 2' in quoted_break
    assert next(line for line in rows if "FC-4\t" in line).split("\t")[2] == "Tab\\there \\\\ 4"


async def test_each_debtors_rows_go_to_its_partition_and_none_is_lost(
    pool: ProcessPoolExecutor,
) -> None:
    data = portfolio(400).encode()
    alone_rows, alone_rejections, alone_total, _ = await staged(data, None)
    batches: list[Batch] = []

    async def keep(batch: Batch) -> None:
        batches.append(batch)

    total = await parse_chunks(_chunks(data), GENERIC, keep, pool=pool, partitions=3)
    by_partition = [
        b"".join(batch.rows[p] for batch in batches).decode().splitlines() for p in range(3)
    ]
    debtors = [{line.split("\t")[1] for line in lines} for lines in by_partition]
    assert all(debtors), "a partition got no debtor at all"
    for partition, ids in enumerate(debtors):
        assert {partition_of(debtor_id, 3) for debtor_id in ids} == {partition}
    # Every row once, in file order within its partition; the rejections as before.
    every_row = [line for lines in by_partition for line in lines]
    assert sorted(every_row, key=lambda line: row_numbers([line])) == alone_rows
    assert all(
        lines == sorted(lines, key=lambda line: row_numbers([line])) for lines in by_partition
    )
    rejections = b"".join(batch.rejections for batch in batches).decode().splitlines()
    assert (rejections, total) == (alone_rejections, alone_total)


async def test_quoting_that_cannot_be_cut_safely_is_read_in_one_pass(
    pool: ProcessPoolExecutor,
) -> None:
    # `"Ana"x` is read leniently as `Anax`; no cut after it can be proven to fall between
    # records, so the rest of the file is parsed by one reader, with the same results.
    lines = portfolio(200).splitlines()
    lines[60] = lines[60].replace("Cliente", '"Ana"x', 1)
    data = ("\n".join(lines) + "\n").encode()
    alone = await staged(data, None)
    assert (await staged(data, pool))[:3] == alone[:3]
    assert any("\tAnax" in line for line in alone[0])


async def test_a_latin_1_semicolon_export_with_spanish_headers(
    pool: ProcessPoolExecutor,
) -> None:
    profile = load_profile(
        """
name: banco-prueba
encoding: latin-1
delimiter: auto
decimal_separator: ","
thousands_separator: "."
date_formats: ["%d/%m/%Y"]
default_document_type: invoice
defaults: {country: PE, currency: PEN}
columns:
  debtor_id: RUC
  name: Razón social
  document_id: Nro documento
  due_on: Vencimiento
  amount: Importe
"""
    )
    lines = ["RUC;Razón social;Nro documento;Vencimiento;Importe"]
    for n in range(120):
        lines.append(
            f"2010{n // 2};Compañía Año {n};F-{n};{1 + n % 28:02d}/10/2026;1.234,5{n % 10}"
        )
    data = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    alone = await staged(data, None, profile)
    rows, rejections, total, _ = await staged(data, pool, profile)
    assert (rows, rejections, total) == alone[:3]
    assert total == 120 and not rejections
    assert "Compañía Año 7" in rows[7] and "\t123457\t" in rows[7]


async def test_a_file_unreadable_deep_inside_fails_the_same_way(
    pool: ProcessPoolExecutor,
) -> None:
    lines = portfolio(200).splitlines()
    lines[150] = lines[150].replace("Cliente", '"' + "x" * 200_000 + '"', 1)  # over csv's limit
    data = ("\n".join(lines) + "\n").encode()
    with pytest.raises(UnreadableFile) as alone:
        await staged(data, None)
    with pytest.raises(UnreadableFile) as sliced:
        await staged(data, pool)
    assert str(sliced.value) == str(alone.value)
    assert str(alone.value).startswith("line ") and "field larger than field limit" in str(
        alone.value
    )

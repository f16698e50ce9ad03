"""Runs the (synchronous, CPU-bound) file parser off the event loop, fed with the import's chunks.

A thread reads the chunks, decodes them and finds the header. With a process pool (CSV files),
it cuts the rest into slices of whole records, about a megabyte each, and each slice is parsed
and validated by a pool process that sends back ready COPY text (`copy_text`) and the slice's
rejections; the event loop COPYs the slices in file order. Without a pool (or for a workbook,
or a file whose quoting leaves no safe cut) the thread parses the records itself.

The event loop keeps serving HTTP, Kafka heartbeats and the COPY of earlier batches meanwhile;
bounded queues on both sides keep memory flat whatever the file's size.
"""

import asyncio
import contextlib
import io
import os
import queue
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from itertools import islice
from typing import BinaryIO, NamedTuple
from uuid import uuid4

from recupero_ingest.adapters.copy_text import encode, rejection_line, staged_line
from recupero_ingest.adapters.partitions import partition_of
from recupero_ingest.domain.profiles import ImportProfile
from recupero_ingest.domain.reading import (
    BodySlice,
    Layout,
    SourceDigest,
    SourceRecord,
    body_records,
    body_slices,
    csv_body,
    header_layout,
    iter_records,
)
from recupero_ingest.domain.rows import Rejection, RowParser

_END = None


class _Stopped(Exception):
    """The event loop side gave up (its COPY failed, or it was cancelled): the thread leaves."""


class _ChunkStream(io.RawIOBase):
    """The parser thread's view of the chunks the event loop hands it."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._buffer = memoryview(b"")
        self._ended = False
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: "bytearray | memoryview") -> int:  # type: ignore[override]
        while not self._buffer and not self._ended:
            try:
                chunk = self.chunks.get(timeout=0.5)
            except queue.Empty:
                if self.stop.is_set():
                    raise _Stopped from None
                continue
            if chunk is _END:
                self._ended = True
            else:
                self._buffer = memoryview(chunk)
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        self.consumed += size
        return size


@dataclass
class Batch:
    rows: list[bytes]
    """COPY text of the valid rows, each with its record's `SourceDigest` (`copy_text`), one
    text per consolidation partition (`partitions.partition_of` of the row's debtor)."""
    rejections: bytes = b""
    """COPY text of the rejections."""
    records_seen: int = 0
    bytes_read: int = 0


def parse_records(
    records: Iterable[SourceRecord], parser: RowParser, digest: SourceDigest, partitions: int = 1
) -> Batch:
    """The records as COPY text of valid rows (with their digests), split by partition, and of
    rejections."""
    rows: list[list[str]] = [[] for _ in range(partitions)]
    rejections: list[str] = []
    seen = 0
    # A debtor's rows usually follow one another: its partition is hashed once for them.
    debtor_id, partition = "", 0
    for record in records:
        parsed = parser.parse(record)
        if isinstance(parsed, Rejection):
            rejections.append(rejection_line(parsed))
        else:
            if parsed.debtor_id != debtor_id:
                debtor_id = parsed.debtor_id
                partition = partition_of(debtor_id, partitions)
            rows[partition].append(staged_line(parsed, digest(record)))
        seen += 1
    return Batch(
        rows=[encode(part) for part in rows], rejections=encode(rejections), records_seen=seen
    )


def _parse_serially(
    records: Iterator[SourceRecord],
    profile: ImportProfile,
    batch_size: int,
    partitions: int,
    bytes_read: Callable[[], int],
    hand_over: Callable[["Batch | _Submitted"], None],
) -> None:
    parser, digest = RowParser(profile), SourceDigest(profile)
    while True:
        batch = parse_records(islice(records, batch_size), parser, digest, partitions)
        batch.bytes_read = bytes_read()
        hand_over(batch)
        if batch.records_seen < batch_size:
            return


class _SliceTask(NamedTuple):
    """What a pool process needs to parse one slice: all of it pickles in microseconds."""

    reader_key: str
    profile: ImportProfile
    delimiter: str
    header: list[str]
    header_row: int
    slice: BodySlice
    partitions: int


class _Submitted(NamedTuple):
    result: "Future[Batch]"
    bytes_read: int


# A pool process's parser for the import it last worked on (the caches are worth keeping).
_readers: dict[str, tuple[RowParser, SourceDigest, Layout]] = {}


def warm_up_parser() -> None:
    """Submitted to a new pool process so that it starts (and imports this module) early."""


def exit_with_parent(parent: int) -> None:
    """A pool process's initializer: leave once the service process is gone. A killed parent
    never closes the pool's queue (each process holds both of its ends), so without this its
    processes would wait on it forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _parse_slice(task: _SliceTask) -> Batch:
    """Runs in a pool process."""
    reader = _readers.get(task.reader_key)
    if reader is None:
        _readers.clear()
        profile = task.profile
        reader = _readers[task.reader_key] = (
            RowParser(profile),
            SourceDigest(profile),
            header_layout(task.header, profile, task.header_row),
        )
    parser, digest, layout = reader
    part = task.slice
    return parse_records(
        body_records(
            [part.text],
            delimiter=task.delimiter,
            quotechar=task.profile.quotechar,
            layout=layout,
            first_row=part.first_row,
            first_line=part.first_line,
        ),
        parser,
        digest,
        task.partitions,
    )


def _parse_in_pool(
    source: BinaryIO,
    profile: ImportProfile,
    pool: Executor,
    reader_key: str,
    batch_size: int,
    partitions: int,
    bytes_read: Callable[[], int],
    hand_over: Callable[[Batch | _Submitted], None],
) -> None:
    body = csv_body(source, profile)
    layout = header_layout(body.header, profile, body.header_row)  # a bad header fails here
    for part in body_slices(body, profile.quotechar):
        if isinstance(part, BodySlice):
            task = _SliceTask(
                reader_key, profile, body.delimiter, body.header, body.header_row, part, partitions
            )
            hand_over(_Submitted(pool.submit(_parse_slice, task), bytes_read()))
        else:
            records = body_records(
                part.blocks,
                delimiter=body.delimiter,
                quotechar=profile.quotechar,
                layout=layout,
                first_row=part.first_row,
                first_line=part.first_line,
            )
            _parse_serially(records, profile, batch_size, partitions, bytes_read, hand_over)


OnBatch = Callable[[Batch], Awaitable[None]]


async def parse_chunks(
    chunks: AsyncIterator[bytes],
    profile: ImportProfile,
    on_batch: OnBatch,
    batch_size: int = 20_000,
    pool: Executor | None = None,
    partitions: int = 1,
) -> int:
    """Parse the file's chunks with `profile`; `on_batch` gets the batches in file order (every
    `batch_size` records, or every slice when `pool` parses a CSV file), their rows split into
    `partitions`. Returns how many records the file had. Errors of the file as a whole
    (`UnreadableFile`) propagate."""
    loop = asyncio.get_running_loop()
    # With a pool, the queued slices are the ones being parsed: two keep two processes busy
    # while the event loop COPYs a third.
    batches: asyncio.Queue[Batch | _Submitted | BaseException | None] = asyncio.Queue(maxsize=2)
    stop = threading.Event()
    stream = _ChunkStream(stop)
    reader_key = uuid4().hex

    def hand_over(item: Batch | _Submitted | BaseException | None) -> None:
        handed = asyncio.run_coroutine_threadsafe(batches.put(item), loop)
        while True:
            try:
                handed.result(timeout=0.5)
                return
            except TimeoutError:
                if stop.is_set():
                    handed.cancel()
                    raise _Stopped from None

    def parse(source: BinaryIO) -> None:
        def bytes_read() -> int:
            return stream.consumed

        try:
            if pool is not None and profile.format == "csv":
                _parse_in_pool(
                    source,
                    profile,
                    pool,
                    reader_key,
                    batch_size,
                    partitions,
                    bytes_read,
                    hand_over,
                )
            else:
                records = iter_records(source, profile)
                _parse_serially(records, profile, batch_size, partitions, bytes_read, hand_over)
            hand_over(_END)
        except _Stopped:
            return
        except BaseException as exc:  # surfaced on the event loop side
            with contextlib.suppress(_Stopped):
                hand_over(exc)

    if profile.format == "xlsx":
        # A workbook is a zip: it needs the whole file, seekable. Spooled to disk past 64 MB.
        spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
        async for chunk in chunks:
            spool.write(chunk)
        spool.seek(0)
        worker = threading.Thread(target=parse, args=(spool,), daemon=True)
        feeder = None
    else:
        worker = threading.Thread(
            target=parse, args=(io.BufferedReader(stream, 1 << 20),), daemon=True
        )

        def put(chunk: bytes | None) -> None:
            while not stop.is_set():
                with contextlib.suppress(queue.Full):
                    stream.chunks.put(chunk, timeout=0.5)
                    return

        async def feed() -> None:
            async for chunk in chunks:
                await asyncio.to_thread(put, chunk)
            await asyncio.to_thread(put, _END)

        feeder = asyncio.create_task(feed())
    worker.start()
    total = 0
    try:
        while (item := await batches.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, _Submitted):
                batch = await asyncio.wrap_future(item.result)
                batch.bytes_read = item.bytes_read
            else:
                batch = item
            total += batch.records_seen
            await on_batch(batch)
    finally:
        stop.set()
        if feeder is not None:
            feeder.cancel()
        await asyncio.to_thread(worker.join)
        # Slices queued behind a failure are not parsed for nothing.
        while not batches.empty():
            if isinstance(left := batches.get_nowait(), _Submitted):
                left.result.cancel()
    return total

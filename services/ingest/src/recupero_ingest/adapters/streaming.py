"""Runs the (synchronous, CPU-bound) file parser in a thread, fed with the import's chunks.

The event loop keeps serving HTTP, Kafka heartbeats and the COPY of earlier batches while the
thread parses; bounded queues on both sides keep memory flat whatever the file's size.
"""

import asyncio
import contextlib
import io
import queue
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import BinaryIO

from recupero_ingest.domain.profiles import ImportProfile
from recupero_ingest.domain.reading import SourceDigest, SourceRecord, iter_records
from recupero_ingest.domain.rows import DocumentRow, Rejection, RowParser

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
    rows: list[DocumentRow] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    """`SourceDigest` of each row's record, in the order of `rows`."""
    rejections: list[Rejection] = field(default_factory=list)
    records_seen: int = 0
    bytes_read: int = 0


def parse_records(
    records: Iterable[SourceRecord], parser: RowParser, digest: SourceDigest
) -> Batch:
    """The records as valid rows (with their digests) and rejections."""
    batch = Batch()
    for record in records:
        parsed = parser.parse(record)
        if isinstance(parsed, Rejection):
            batch.rejections.append(parsed)
        else:
            batch.rows.append(parsed)
            batch.digests.append(digest(record))
        batch.records_seen += 1
    return batch


def _parse(
    source: BinaryIO,
    profile: ImportProfile,
    batch_size: int,
    bytes_read: Callable[[], int],
    hand_over: Callable[[Batch], None],
) -> None:
    parser, digest = RowParser(profile), SourceDigest(profile)
    records = iter_records(source, profile)
    while True:
        batch = parse_records(islice(records, batch_size), parser, digest)
        batch.bytes_read = bytes_read()
        hand_over(batch)
        if batch.records_seen < batch_size:
            return


OnBatch = Callable[[Batch], Awaitable[None]]


async def parse_chunks(
    chunks: AsyncIterator[bytes],
    profile: ImportProfile,
    on_batch: OnBatch,
    batch_size: int = 20_000,
) -> int:
    """Parse the file's chunks with `profile`; `on_batch` gets every `batch_size` records.
    Returns how many records the file had. Errors of the file as a whole (`UnreadableFile`)
    propagate."""
    loop = asyncio.get_running_loop()
    batches: asyncio.Queue[Batch | BaseException | None] = asyncio.Queue(maxsize=2)
    stop = threading.Event()
    stream = _ChunkStream(stop)

    def hand_over(item: Batch | BaseException | None) -> None:
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
        try:
            _parse(source, profile, batch_size, lambda: stream.consumed, hand_over)
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
            total += item.records_seen
            await on_batch(item)
    finally:
        stop.set()
        if feeder is not None:
            feeder.cancel()
        await asyncio.to_thread(worker.join)
    return total

"""The import worker: claims queued (or abandoned) jobs and runs them, one at a time per replica.

A job whose worker died is recognised by its stale heartbeat and resumed from the stored file;
a job's debtors and events are committed partition by partition, each with a record of it, so
the rerun consolidates only the partitions that had not committed.
"""

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from typing import Any
from uuid import UUID

import structlog

from recupero_ingest import handlers
from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.adapters.streaming import exit_with_parent, warm_up_parser
from recupero_ingest.domain.profiles import ImportProfile, ProfileError
from recupero_ingest.domain.reading import UnreadableFile
from recupero_ingest.settings import IngestSettings
from recupero_runtime.service import Service

log = structlog.get_logger()


class ImportWorker:
    def __init__(
        self,
        service: Service[IngestRepository],
        settings: IngestSettings,
        shipped: dict[str, ImportProfile],
    ) -> None:
        self._service = service
        self._settings = settings
        self._shipped = shipped
        self._wake = asyncio.Event()
        self._parsers: ProcessPoolExecutor | None = None

    def parser_pool(self) -> ProcessPoolExecutor | None:
        """The processes that parse CSV files, started on first use and kept."""
        if self._parsers is None and self._settings.parse_processes:
            self._parsers = ProcessPoolExecutor(
                self._settings.parse_processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._parsers

    def warm_up(self) -> None:
        """A file is arriving: start the parser processes while it uploads (a new interpreter
        and its imports take about a second)."""
        if (pool := self.parser_pool()) is not None:
            for _ in range(self._settings.parse_processes):
                pool.submit(warm_up_parser)

    def notify(self) -> None:
        """A job was just queued in this process: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._claim_and_run()
        finally:
            if self._parsers is not None:
                # Waits for a slice being parsed (a fraction of a second): processes left
                # behind would leak the pool's semaphores.
                self._parsers.shutdown(wait=True, cancel_futures=True)
                self._parsers = None

    async def _claim_and_run(self) -> None:
        stale_after = timedelta(seconds=self._settings.import_stale_after_seconds)
        while True:
            async with self._service.unit_of_work() as uow:
                job = await uow.repo.claim_next_job(stale_after)
                await uow.commit()
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.import_poll_seconds)
                self._wake.clear()
                continue
            await self._run(job)

    async def _run(self, job: dict[str, Any]) -> None:
        import_id: UUID = job["import_id"]
        with structlog.contextvars.bound_contextvars(
            import_id=str(import_id), tenant_id=job["tenant_id"]
        ):
            log.info("import_started", attempt=job["attempts"] + 1, profile=job["profile_name"])
            try:
                report = await handlers.run_import(
                    job,
                    lambda: self._service.unit_of_work(str(import_id)),
                    self._chunks(import_id),
                    self._progress(import_id),
                    self._shipped,
                    self.parser_pool(),
                    partitions=self._settings.consolidation_partitions,
                    # Its outbox rows were written in SQL: wake the relay (no poll to wait for).
                    partition_committed=self._service.relay.notify,
                )
            except (UnreadableFile, ProfileError, handlers.UnknownProfile) as exc:
                # The file itself is unusable: retrying cannot help. Nothing was imported.
                await self._fail(import_id, f"{type(exc).__name__}: {exc}")
                return
            except Exception as exc:
                log.exception("import_failed")
                if isinstance(exc, BrokenProcessPool) and self._parsers is not None:
                    self._parsers.shutdown(wait=False)  # a parser process died: start anew
                    self._parsers = None
                if job["attempts"] + 1 >= self._settings.import_max_attempts:
                    await self._fail(
                        import_id,
                        f"gave up after {job['attempts'] + 1} attempts: {exc}"
                        + await self._partly_committed(import_id),
                    )
                else:
                    await self._release(import_id)
                return
            log.info(
                "import_completed",
                **{k: v for k, v in report.items() if k != "balance_by_currency"},
            )

    async def _partly_committed(self, import_id: UUID) -> str:
        """What a job that gives up leaves behind: its committed partitions stand (their debtors
        and events are consistent); importing the same file again completes the others."""
        async with self._service.unit_of_work() as uow:
            committed = await uow.repo.committed_partitions(import_id)
        if not committed:
            return ""
        return (
            f"; {len(committed)} of {committed[0]['partitions']} partitions of the debtors had"
            " committed and stand (import the file again to complete the rest)"
        )

    async def _chunks(self, import_id: UUID) -> AsyncIterator[bytes]:
        # Its own connection: the job's transaction is busy with COPY meanwhile.
        async with self._service.unit_of_work() as reader:
            async for chunk in reader.repo.chunks(import_id):
                yield chunk

    def _progress(self, import_id: UUID) -> handlers.Progress:
        async def record(rows: int, bytes_read: int) -> None:
            async with self._service.unit_of_work() as uow:
                await uow.repo.record_progress(import_id, rows, bytes_read)
                await uow.commit()

        return record

    async def _fail(self, import_id: UUID, error: str) -> None:
        log.warning("import_rejected", error=error)
        async with self._service.unit_of_work() as uow:
            await uow.repo.fail_import(import_id, error)
            await uow.commit()

    async def _release(self, import_id: UUID) -> None:
        """Let any worker retry it now."""
        async with self._service.unit_of_work() as uow:
            await uow.repo.release_job(import_id)
            await uow.commit()

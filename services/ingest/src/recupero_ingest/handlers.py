"""Ingest's use cases as plain async functions over a unit of work.

A file import is a job: `submit_import` stores the file and returns at once; `run_import` (the
worker) parses it and COPYs the valid rows into staging tables, one per partition of the
debtors, each in a transaction of its own; the partitions are consolidated at once (one
PostgreSQL backend, so one core, each), and each commits its debtors, documents, `debt-imported`
outbox rows and a record of its share of the report. A worker killed midway leaves the job and
the partitions that committed; another worker resumes from the stored file and consolidates
only the others. Records that come through the batch API or the `debt-records` topic take the
same path, inline, in one transaction.
"""

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID, uuid4

import structlog

from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.adapters.streaming import Batch, parse_chunks, parse_records
from recupero_ingest.domain.profiles import ImportProfile, ProfileError, load_profile
from recupero_ingest.domain.reading import SourceDigest
from recupero_ingest.domain.records import RECORDS_PROFILE, record_to_source
from recupero_ingest.domain.rows import RowParser
from recupero_runtime.db import Work

log = structlog.get_logger()

MODES = ("incremental", "full")
Progress = Callable[[int, int], Awaitable[None]]
# The parse rejections (rows with no valid debtor to route them by) are kept, and counted, with
# this partition's transaction: once, whichever run commits it.
REJECTIONS_PARTITION = 0
PARTITION_COUNTS = (
    "debtors_new",
    "debtors_changed",
    "debtors_unchanged",
    "debtors_settled",
    "rows_rejected",
)


class Transaction(Work[IngestRepository], Protocol):
    """A unit of work that the handler commits itself: an import commits partition by
    partition."""

    async def commit(self) -> None: ...


Transactions = Callable[[], AbstractAsyncContextManager[Transaction]]


class UnknownProfile(LookupError):
    pass


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")


@dataclass(frozen=True)
class SubmitImport:
    tenant_id: str
    filename: str
    profile_name: str
    mode: str
    as_of: datetime


@dataclass(frozen=True)
class ImportRecords:
    """Records from a core system (batch API or Kafka), in the canonical field names."""

    tenant_id: str
    records: list[dict[str, Any]]
    source: str
    mode: str
    as_of: datetime


async def resolve_profile(
    repo: IngestRepository, tenant_id: str, name: str, shipped: dict[str, ImportProfile]
) -> tuple[ImportProfile, int]:
    """The tenant's own latest version of `name`, else the profile Recupero ships (version 0)."""
    stored = await repo.latest_profile(tenant_id, name)
    if stored is not None:
        return load_profile(stored["source_text"]), int(stored["version"])
    if name in shipped:
        return shipped[name], 0
    raise UnknownProfile(name)


async def save_profile(
    uow: Work[IngestRepository], tenant_id: str, name: str, source_text: str
) -> tuple[ImportProfile, int]:
    """Validate and store a new version of a tenant's profile (`ProfileError` says where)."""
    profile = load_profile(source_text)
    if profile.name != name:
        raise ProfileError(f"name: the document says {profile.name!r}, the URL {name!r}")
    version = await uow.repo.save_profile(
        tenant_id, name, profile.model_dump(mode="json"), source_text
    )
    return profile, version


async def submit_import(
    command: SubmitImport,
    uow: Work[IngestRepository],
    chunks: AsyncIterator[bytes],
    shipped: dict[str, ImportProfile],
) -> UUID:
    """Keep the file (in the database, so any replica can process it) and queue the job."""
    _check_mode(command.mode)
    _, version = await resolve_profile(uow.repo, command.tenant_id, command.profile_name, shipped)
    import_id = uuid4()
    await uow.repo.create_import(
        import_id=import_id,
        tenant_id=command.tenant_id,
        source="file",
        filename=command.filename,
        profile_name=command.profile_name,
        profile_version=version,
        mode=command.mode,
        status="received",
        as_of=command.as_of,
    )
    size = 0
    seq = 0
    digest = hashlib.sha256()
    async for chunk in chunks:
        await uow.repo.store_chunk(import_id, command.tenant_id, seq, chunk)
        digest.update(chunk)
        size += len(chunk)
        seq += 1
    await uow.repo.set_size(import_id, size, digest.hexdigest())
    return import_id


def _daily_rate(policy: dict[str, Any]) -> Decimal | None:
    return Decimal(policy["daily_rate"]) if policy.get("kind") == "simple_daily" else None


async def _finish(
    uow: Work[IngestRepository], import_id: UUID, report: dict[str, Any], rows_total: int
) -> dict[str, Any]:
    """Completes the import with its consolidation's report and the rows it read."""
    report["rows_total"] = rows_total
    report["rows_accepted"] = rows_total - report["rows_rejected"]
    await uow.repo.finish_import(import_id, **report)
    return report


async def _repeat_of_last_import(
    job: dict[str, Any], uow: Work[IngestRepository], daily_rate: Decimal | None
) -> dict[str, Any] | None:
    """The same file as the last import applied, with no interest accruing: every debtor is
    unchanged, and the report (rejections included) is the one that import made."""
    if daily_rate is not None:
        return None
    last = await uow.repo.last_applied_if_same_file(job)
    if last is None:
        return None
    report: dict[str, Any] = {
        "rows_total": last["rows_total"],
        "rows_accepted": last["rows_accepted"],
        "rows_rejected": last["rows_rejected"],
        "debtors_new": 0,
        "debtors_changed": 0,
        "debtors_settled": 0,
        "debtors_unchanged": last["debtors_new"]
        + last["debtors_changed"]
        + last["debtors_unchanged"],
        "balance_by_currency": last["balance_by_currency"],
        "bytes_processed": job["bytes_total"],
        "same_file_as": last["import_id"],
    }
    await uow.repo.copy_rejections_of(job["import_id"], last["import_id"])
    await uow.repo.finish_import(job["import_id"], **report)
    log.info("import_same_file", same_file_as=str(last["import_id"]))
    return report


# Debtors an import wrote from which the stored tables' statistics are refreshed at once: smaller
# imports leave it to autovacuum.
REFRESH_STATISTICS_AFTER = 10_000
_WRITTEN = ("debtors_new", "debtors_changed", "debtors_settled")


def sum_partition_reports(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The import's report from its partitions' shares (their debtors and rows are disjoint)."""
    report: dict[str, Any] = dict.fromkeys(PARTITION_COUNTS, 0)
    balances: Counter[str] = Counter()
    for part in parts:
        for key in PARTITION_COUNTS:
            report[key] += part[key]
        balances.update(part["balance_by_currency"])
    report["balance_by_currency"] = dict(sorted(balances.items()))
    return report


async def run_import(
    job: dict[str, Any],
    transactions: Transactions,
    chunks: AsyncIterator[bytes],
    progress: Progress,
    shipped: dict[str, ImportProfile],
    parsers: Executor | None = None,
    partitions: int = 1,
    partition_committed: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Parse (in `parsers`' processes if given) and stage one job split into `partitions` of
    its debtors, consolidate the partitions at once, each committing in its own transaction
    (then `partition_committed` is called: its events can leave), and complete the job.
    A rerun of a job keeps its split and skips the partitions that committed."""
    import_id, tenant_id = job["import_id"], job["tenant_id"]
    async with transactions() as uow:
        daily_rate = _daily_rate(await uow.repo.interest_policy(tenant_id))
        if (report := await _repeat_of_last_import(job, uow, daily_rate)) is not None:
            await uow.commit()
            return report
        profile, _ = await resolve_profile(uow.repo, tenant_id, job["profile_name"], shipped)
        committed = await uow.repo.committed_partitions(import_id)
    if committed:
        partitions = committed[0]["partitions"]
        log.info("import_resumed", partitions_committed=[p["partition"] for p in committed])
    pending = sorted(set(range(partitions)) - {p["partition"] for p in committed})

    async with contextlib.AsyncExitStack() as stack:
        works = {p: await stack.enter_async_context(transactions()) for p in pending}
        for work in works.values():
            await work.repo.prepare_staging()
        seen = 0

        async def stage(batch: Batch) -> None:
            # A committed partition's rows (and its share of the rejections) are dropped.
            nonlocal seen
            await asyncio.gather(
                *(
                    work.repo.copy_staged(
                        batch.rows[p], batch.rejections if p == REJECTIONS_PARTITION else b""
                    )
                    for p, work in works.items()
                )
            )
            seen += batch.records_seen
            await progress(seen, batch.bytes_read)

        started = time.perf_counter()
        rows_total = await parse_chunks(chunks, profile, stage, pool=parsers, partitions=partitions)
        log.info("import_staged", rows=rows_total, seconds=round(time.perf_counter() - started, 3))

        async def consolidate(partition: int, work: Transaction) -> None:
            share = await work.repo.consolidate(
                import_id=import_id,
                tenant_id=tenant_id,
                as_of=job["as_of"],
                full_snapshot=job["mode"] == "full",
                daily_rate=daily_rate,
                source=work.source,
                correlation_id=str(import_id),
                partition=partition,
                partitions=partitions,
            )
            await work.repo.record_partition(import_id, tenant_id, partition, partitions, **share)
            await work.commit()
            partition_committed()
            log.info("import_partition_committed", partition=partition, partitions=partitions)

        # A failing partition cancels the others (their transactions roll back on the way out).
        async with asyncio.TaskGroup() as group:
            for partition, work in works.items():
                group.create_task(consolidate(partition, work))

    async with transactions() as uow:
        parts = await uow.repo.committed_partitions(import_id)
        report = await _finish(uow, import_id, sum_partition_reports(parts), rows_total)
        # Before the import is seen completed, so that a next import finds them fresh.
        if sum(report[key] for key in _WRITTEN) >= REFRESH_STATISTICS_AFTER:
            await uow.repo.refresh_statistics()
        await uow.commit()
    return report


async def import_records(
    command: ImportRecords, uow: Work[IngestRepository], correlation_id: str | None
) -> tuple[UUID, dict[str, Any]]:
    """Validate and consolidate records inline, with the same rules as a file."""
    _check_mode(command.mode)
    import_id = uuid4()
    await uow.repo.create_import(
        import_id=import_id,
        tenant_id=command.tenant_id,
        source=command.source,
        filename=f"{command.source}-batch",
        profile_name=RECORDS_PROFILE.name,
        profile_version=0,
        mode=command.mode,
        status="parsing",
        as_of=command.as_of,
    )
    batch = parse_records(
        (record_to_source(index, record) for index, record in enumerate(command.records, 1)),
        RowParser(RECORDS_PROFILE),
        SourceDigest(RECORDS_PROFILE),
    )
    await uow.repo.prepare_staging()
    await uow.repo.copy_staged(batch.rows[0], batch.rejections)
    consolidated = await uow.repo.consolidate(
        import_id=import_id,
        tenant_id=command.tenant_id,
        as_of=command.as_of,
        full_snapshot=command.mode == "full",
        daily_rate=_daily_rate(await uow.repo.interest_policy(command.tenant_id)),
        source=uow.source,
        correlation_id=correlation_id or str(import_id),
    )
    return import_id, await _finish(uow, import_id, consolidated, len(command.records))

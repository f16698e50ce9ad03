"""All of ingest's queries. Every statement is scoped by tenant or by an import of one tenant."""

import io
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_ingest.adapters import consolidation_sql as sql
from recupero_ingest.adapters.tables import (
    import_chunks,
    import_partitions,
    imports,
    profiles,
    rejections,
    tenant_policies,
)
from recupero_runtime.db import asyncpg_connection, prepare_bulk_transaction

log = structlog.get_logger()


class IngestRepository:
    """Ingest's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- jobs --------------------------------------------------------------------------------

    async def create_import(self, **values: Any) -> None:
        await self.session.execute(imports.insert().values(**values))

    async def store_chunk(self, import_id: UUID, tenant_id: str, seq: int, data: bytes) -> None:
        await self.session.execute(
            import_chunks.insert().values(
                import_id=import_id, tenant_id=tenant_id, seq=seq, data=data
            )
        )

    async def claim_next_job(self, stale_after: timedelta) -> dict[str, Any] | None:
        """A received job, or one whose worker stopped sending heartbeats (it died)."""
        row = (
            await self.session.execute(
                select(imports)
                .where(
                    imports.c.status.in_(("received", "parsing")),
                    or_(
                        imports.c.heartbeat_at.is_(None),
                        imports.c.heartbeat_at < func.now() - stale_after,
                    ),
                )
                .order_by(imports.c.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).one_or_none()
        if row is None:
            return None
        await self.session.execute(
            update(imports)
            .where(imports.c.import_id == row.import_id)
            .values(
                status="parsing",
                attempts=imports.c.attempts + 1,
                heartbeat_at=func.now(),
                started_at=func.coalesce(imports.c.started_at, func.now()),
            )
        )
        return dict(row._mapping)

    async def set_size(self, import_id: UUID, bytes_total: int, file_sha256: str) -> None:
        await self.session.execute(
            update(imports)
            .where(imports.c.import_id == import_id)
            .values(bytes_total=bytes_total, file_sha256=file_sha256)
        )

    async def last_applied_if_same_file(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The tenant's last completed import, if it applied this very file (same bytes, profile
        version and mode): then nothing has changed the portfolio since, and importing the file
        again cannot change it either."""
        row = (
            await self.session.execute(
                select(imports)
                .where(
                    imports.c.tenant_id == job["tenant_id"],
                    imports.c.status == "completed",
                    imports.c.import_id != job["import_id"],
                )
                .order_by(imports.c.finished_at.desc())
                .limit(1)
            )
        ).one_or_none()
        if row is None or job["file_sha256"] is None:
            return None
        same = (row.file_sha256, row.profile_name, row.profile_version, row.mode) == (
            job["file_sha256"],
            job["profile_name"],
            job["profile_version"],
            job["mode"],
        )
        return dict(row._mapping) if same else None

    async def copy_rejections_of(self, import_id: UUID, source_import_id: UUID) -> None:
        await self.session.execute(
            text(
                "INSERT INTO ingest.rejections (import_id, tenant_id, row_number, field, value, "
                "reason) SELECT :import_id, tenant_id, row_number, field, value, reason "
                "FROM ingest.rejections WHERE import_id = :source"
            ),
            {"import_id": import_id, "source": source_import_id},
        )

    async def record_progress(self, import_id: UUID, rows_total: int, bytes_processed: int) -> None:
        await self.session.execute(
            update(imports)
            .where(imports.c.import_id == import_id)
            .values(rows_total=rows_total, bytes_processed=bytes_processed, heartbeat_at=func.now())
        )

    async def chunks(self, import_id: UUID) -> AsyncIterator[bytes]:
        seq = 0
        while True:
            data = await self.session.scalar(
                select(import_chunks.c.data).where(
                    import_chunks.c.import_id == import_id, import_chunks.c.seq == seq
                )
            )
            if data is None:
                return
            yield data
            seq += 1

    async def finish_import(self, import_id: UUID, **values: Any) -> None:
        await self.session.execute(
            update(imports)
            .where(imports.c.import_id == import_id)
            .values(status="completed", finished_at=func.now(), error=None, **values)
        )
        # The report and the rejections stay; the file itself is no longer needed.
        await self.session.execute(
            delete(import_chunks).where(import_chunks.c.import_id == import_id)
        )

    async def refresh_statistics(self) -> None:
        """Fresh statistics for the stored debtors and documents, rather than when autovacuum
        gets to them: with those of before a large import (a tenant's first, a few rows),
        PostgreSQL probed the documents of the next import's changed debtors with a nested loop
        over all of them (15 s for a next-day snapshot of 300,000 rows an import later, against
        0.5 s)."""
        await self.session.execute(text("ANALYZE ingest.debtors, ingest.documents"))

    async def release_job(self, import_id: UUID) -> None:
        await self.session.execute(
            update(imports).where(imports.c.import_id == import_id).values(heartbeat_at=None)
        )

    async def fail_import(self, import_id: UUID, error: str) -> None:
        await self.session.execute(
            update(imports)
            .where(imports.c.import_id == import_id)
            .values(status="failed", finished_at=func.now(), error=error)
        )

    async def get_import(self, tenant_id: str, import_id: UUID) -> dict[str, Any] | None:
        row = (
            await self.session.execute(
                select(imports).where(
                    imports.c.tenant_id == tenant_id, imports.c.import_id == import_id
                )
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def list_rejections(
        self, tenant_id: str, import_id: UUID, limit: int | None = None
    ) -> list[dict[str, Any]]:
        result = await self.session.execute(
            select(
                rejections.c.row_number, rejections.c.field, rejections.c.value, rejections.c.reason
            )
            .where(rejections.c.tenant_id == tenant_id, rejections.c.import_id == import_id)
            .order_by(rejections.c.row_number, rejections.c.field)
            .limit(limit)
        )
        return [dict(row._mapping) for row in result]

    # --- partitions of a job already consolidated (each in a transaction of its own) ----------

    async def committed_partitions(self, import_id: UUID) -> list[dict[str, Any]]:
        """The job's partitions whose consolidation committed, each with its share of the
        report (and how many partitions the job was split into)."""
        result = await self.session.execute(
            select(import_partitions)
            .where(import_partitions.c.import_id == import_id)
            .order_by(import_partitions.c.partition)
        )
        return [dict(row._mapping) for row in result]

    async def record_partition(
        self, import_id: UUID, tenant_id: str, partition: int, partitions: int, **report: Any
    ) -> None:
        """In the partition's own transaction: committed with its debtors and events, or not."""
        await self.session.execute(
            import_partitions.insert().values(
                import_id=import_id,
                tenant_id=tenant_id,
                partition=partition,
                partitions=partitions,
                **report,
            )
        )

    # --- staging and consolidation (one transaction per partition) ---------------------------

    async def prepare_staging(self) -> None:
        # Sorts and aggregates of a million rows stay in memory instead of spilling to disk.
        await prepare_bulk_transaction(self.session, work_mem="256MB")
        for statement in sql.CREATE_STAGED:
            await self.session.execute(statement)

    async def _driver(self) -> Any:
        return await asyncpg_connection(self.session)

    async def copy_staged(self, rows: bytes, rejections: bytes) -> None:
        """COPY text of valid rows and of rejections (`copy_text`) into the staging tables."""
        for table, data, columns in (
            ("staged", rows, sql.STAGED_COLUMNS),
            ("staged_rejections", rejections, sql.REJECTION_COLUMNS),
        ):
            if data:
                driver = await self._driver()
                await driver.copy_to_table(table, source=io.BytesIO(data), columns=columns)

    async def consolidate(
        self,
        *,
        import_id: UUID,
        tenant_id: str,
        as_of: datetime,
        full_snapshot: bool,
        daily_rate: Decimal | None,
        source: str,
        correlation_id: str | None,
        partition: int = 0,
        partitions: int = 1,
    ) -> dict[str, Any]:
        """Consolidates what is staged in this transaction: all of the import's debtors, or
        those of `partition` (of `partitions`) when the rows were staged split."""
        params = {
            "import_id": str(import_id),
            "tenant_id": tenant_id,
            "as_of": as_of,
            "full_snapshot": full_snapshot,
            "daily_rate": daily_rate,
            "source": source,
            "correlation_id": correlation_id,
            "partition": partition,
            "partitions": partitions,
        }
        for name, statement in sql.CONSOLIDATION_STEPS:
            started = time.perf_counter()
            # Each step gets the parameters it names (a missing one fails the execution).
            wanted = statement.compile().params
            await self.session.execute(statement, {k: v for k, v in params.items() if k in wanted})
            log.info(
                "consolidation_step",
                step=name,
                partition=partition,
                seconds=round(time.perf_counter() - started, 3),
            )
        report = (await self.session.execute(sql.REPORT)).one()
        return dict(report._mapping)

    # --- tenant settings ----------------------------------------------------------------------

    async def interest_policy(self, tenant_id: str) -> dict[str, Any]:
        policy = await self.session.scalar(
            select(tenant_policies.c.interest_policy).where(
                tenant_policies.c.tenant_id == tenant_id
            )
        )
        return policy or {"kind": "none"}

    async def set_interest_policy(self, tenant_id: str, policy: dict[str, Any]) -> None:
        upsert = insert(tenant_policies).values(tenant_id=tenant_id, interest_policy=policy)
        await self.session.execute(
            upsert.on_conflict_do_update(
                index_elements=[tenant_policies.c.tenant_id],
                set_={"interest_policy": upsert.excluded.interest_policy, "updated_at": func.now()},
            )
        )

    async def latest_profile(self, tenant_id: str, name: str) -> dict[str, Any] | None:
        row = (
            await self.session.execute(
                select(profiles)
                .where(profiles.c.tenant_id == tenant_id, profiles.c.name == name)
                .order_by(profiles.c.version.desc())
                .limit(1)
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def list_profiles(self, tenant_id: str) -> list[dict[str, Any]]:
        result = await self.session.execute(
            select(profiles.c.name, func.max(profiles.c.version).label("version"))
            .where(profiles.c.tenant_id == tenant_id)
            .group_by(profiles.c.name)
            .order_by(profiles.c.name)
        )
        return [dict(row._mapping) for row in result]

    async def save_profile(
        self, tenant_id: str, name: str, document: dict[str, Any], source_text: str
    ) -> int:
        """Stores a new version; returns its number. Versions are never overwritten: two
        concurrent saves of one name collide on the primary key and the second fails."""
        current = await self.session.scalar(
            select(func.coalesce(func.max(profiles.c.version), 0)).where(
                profiles.c.tenant_id == tenant_id, profiles.c.name == name
            )
        )
        version = int(current or 0) + 1
        await self.session.execute(
            profiles.insert().values(
                tenant_id=tenant_id,
                name=name,
                version=version,
                document=document,
                source_text=source_text,
            )
        )
        return version

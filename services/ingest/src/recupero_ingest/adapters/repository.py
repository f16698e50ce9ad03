"""All of ingest's queries. Every statement is scoped by tenant."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_ingest.adapters.tables import debtors, documents, imports, rejections
from recupero_ingest.domain.consolidation import DebtorPortfolio
from recupero_ingest.domain.rows import Rejection


class IngestRepository:
    """Ingest's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_import(
        self, tenant_id: str, import_id: UUID, filename: str, as_of: datetime
    ) -> None:
        await self.session.execute(
            imports.insert().values(
                import_id=import_id,
                tenant_id=tenant_id,
                filename=filename,
                status="running",
                as_of=as_of,
            )
        )

    async def finish_import(self, import_id: UUID, **counts: Any) -> None:
        await self.session.execute(
            update(imports)
            .where(imports.c.import_id == import_id)
            .values(status="completed", finished_at=func.now(), **counts)
        )

    async def add_rejections(
        self, tenant_id: str, import_id: UUID, items: Iterable[Rejection]
    ) -> None:
        rows = [
            {
                "import_id": import_id,
                "tenant_id": tenant_id,
                "row_number": item.row_number,
                "field": item.field,
                "value": item.value,
                "reason": item.reason,
            }
            for item in items
        ]
        if rows:
            await self.session.execute(insert(rejections).on_conflict_do_nothing(), rows)

    async def fingerprints(self, tenant_id: str, debtor_ids: list[str]) -> dict[str, str]:
        result = await self.session.execute(
            select(debtors.c.debtor_id, debtors.c.fingerprint).where(
                debtors.c.tenant_id == tenant_id, debtors.c.debtor_id.in_(debtor_ids)
            )
        )
        return {row.debtor_id: row.fingerprint for row in result}

    async def save_debtor(
        self, tenant_id: str, portfolio: DebtorPortfolio, import_id: UUID
    ) -> None:
        values = {
            "tenant_id": tenant_id,
            "debtor_id": portfolio.debtor_id,
            "contact": portfolio.contact.model_dump(mode="json"),
            "balance_minor": portfolio.balance.amount_minor,
            "currency": portfolio.currency,
            "oldest_due_on": portfolio.oldest_due_on,
            "fingerprint": portfolio.fingerprint(),
            "last_import_id": import_id,
        }
        upsert = insert(debtors).values(values)
        await self.session.execute(
            upsert.on_conflict_do_update(
                index_elements=[debtors.c.tenant_id, debtors.c.debtor_id],
                set_={**{key: upsert.excluded[key] for key in values}, "updated_at": func.now()},
            )
        )
        # A snapshot replaces the debtor's documents: what the creditor no longer lists is gone.
        await self.session.execute(
            delete(documents).where(
                documents.c.tenant_id == tenant_id, documents.c.debtor_id == portfolio.debtor_id
            )
        )
        await self.session.execute(
            documents.insert(),
            [
                {
                    "tenant_id": tenant_id,
                    "debtor_id": portfolio.debtor_id,
                    "document_id": doc.document_id,
                    "kind": doc.kind.value,
                    "product": doc.product,
                    "issued_on": doc.issued_on,
                    "due_on": doc.due_on,
                    "amount_minor": doc.amount.amount_minor,
                    "currency": doc.amount.currency,
                }
                for doc in portfolio.documents
            ],
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

    async def list_rejections(self, tenant_id: str, import_id: UUID) -> list[dict[str, Any]]:
        result = await self.session.execute(
            select(
                rejections.c.row_number, rejections.c.field, rejections.c.value, rejections.c.reason
            )
            .where(rejections.c.tenant_id == tenant_id, rejections.c.import_id == import_id)
            .order_by(rejections.c.row_number, rejections.c.field)
        )
        return [dict(row._mapping) for row in result]

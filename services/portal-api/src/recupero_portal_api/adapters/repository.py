"""All of portal-api's queries. Every statement is scoped by tenant.

Debtor upserts keep the newest value of each group of columns by the time it carries (snapshot
time, segmentation time), so the read model ends the same whatever order the topics are read in.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

from sqlalchemy import ColumnElement, Row, case, func, or_, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_portal_api.adapters.tables import debtors, payments, timeline

# A result row of any shape; callers read its columns by name.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

SNAPSHOT_COLUMNS = ("contact", "snapshot_balance_minor", "currency", "snapshot_as_of")
DOCUMENT_COLUMNS = ("documents", "documents_as_of")
SEGMENT_COLUMNS = ("segment", "stage", "days_past_due", "segmented_at")


def _newest(
    upsert: Insert, columns: Sequence[str], stamp: str, *, nullable: bool = False
) -> dict[str, ColumnElement[Any]]:
    """SET clauses that take the incoming values only if they are at least as new as the stored."""
    incoming_is_newer: ColumnElement[bool] = upsert.excluded[stamp] >= debtors.c[stamp]
    if nullable:
        incoming_is_newer = or_(debtors.c[stamp].is_(None), incoming_is_newer)
    return {
        column: case((incoming_is_newer, upsert.excluded[column]), else_=debtors.c[column])
        for column in columns
    }


class PortalRepository:
    """Portal-api's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save_debt_snapshot(
        self,
        *,
        tenant_id: str,
        debtor_id: str,
        contact: dict[str, Any],
        documents: list[dict[str, Any]],
        balance_minor: int,
        currency: str,
        as_of: datetime,
    ) -> None:
        upsert = insert(debtors).values(
            tenant_id=tenant_id,
            debtor_id=debtor_id,
            contact=contact,
            snapshot_balance_minor=balance_minor,
            currency=currency,
            snapshot_as_of=as_of,
            documents=documents,
            documents_as_of=as_of,
        )
        await self.session.execute(
            upsert.on_conflict_do_update(
                index_elements=[debtors.c.tenant_id, debtors.c.debtor_id],
                set_={
                    **_newest(upsert, SNAPSHOT_COLUMNS, "snapshot_as_of"),
                    **_newest(upsert, DOCUMENT_COLUMNS, "documents_as_of", nullable=True),
                    "updated_at": func.now(),
                },
            )
        )

    async def save_segmentation(
        self,
        *,
        tenant_id: str,
        debtor_id: str,
        contact: dict[str, Any],
        snapshot_balance_minor: int,
        currency: str,
        snapshot_as_of: datetime,
        segment: str,
        stage: str,
        days_past_due: int,
        evaluated_at: datetime,
    ) -> None:
        upsert = insert(debtors).values(
            tenant_id=tenant_id,
            debtor_id=debtor_id,
            contact=contact,
            snapshot_balance_minor=snapshot_balance_minor,
            currency=currency,
            snapshot_as_of=snapshot_as_of,
            # Documents arrive with debt-imported; until then the debtor has none to show.
            documents=[],
            segment=segment,
            stage=stage,
            days_past_due=days_past_due,
            segmented_at=evaluated_at,
        )
        await self.session.execute(
            upsert.on_conflict_do_update(
                index_elements=[debtors.c.tenant_id, debtors.c.debtor_id],
                set_={
                    **_newest(upsert, SNAPSHOT_COLUMNS, "snapshot_as_of"),
                    **_newest(upsert, SEGMENT_COLUMNS, "segmented_at", nullable=True),
                    "updated_at": func.now(),
                },
            )
        )

    async def add_payment(
        self,
        *,
        tenant_id: str,
        debtor_id: str,
        payment_id: UUID,
        amount_minor: int,
        currency: str,
        received_at: datetime,
    ) -> None:
        # The same payment re-announced under a new event id must not be subtracted twice.
        await self.session.execute(
            insert(payments)
            .values(
                payment_id=payment_id,
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                amount_minor=amount_minor,
                currency=currency,
                received_at=received_at,
            )
            .on_conflict_do_nothing(index_elements=[payments.c.payment_id])
        )

    async def append_to_timeline(
        self,
        *,
        tenant_id: str,
        debtor_id: str,
        event_id: str,
        topic: str,
        event_type: str,
        occurred_at: datetime,
        summary: str,
        details: dict[str, Any],
    ) -> None:
        await self.session.execute(
            insert(timeline)
            .values(
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                event_id=event_id,
                topic=topic,
                event_type=event_type,
                occurred_at=occurred_at,
                summary=summary,
                details=details,
            )
            .on_conflict_do_nothing(index_elements=[timeline.c.event_id])
        )

    async def get_debtor(self, tenant_id: str, debtor_id: str) -> AnyRow | None:
        return (
            await self.session.execute(
                select(debtors).where(
                    debtors.c.tenant_id == tenant_id, debtors.c.debtor_id == debtor_id
                )
            )
        ).one_or_none()

    async def list_debtors(
        self, tenant_id: str, segment: str | None, limit: int, offset: int
    ) -> tuple[Sequence[AnyRow], int]:
        """A page of the tenant's debtors in debtor id order, and how many match in all."""
        condition = debtors.c.tenant_id == tenant_id
        if segment is not None:
            condition = condition & (debtors.c.segment == segment)
        total = await self.session.scalar(
            select(func.count()).select_from(debtors).where(condition)
        )
        rows = (
            await self.session.execute(
                select(debtors)
                .where(condition)
                .order_by(debtors.c.debtor_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
        return rows, total or 0

    async def all_snapshots(self, tenant_id: str) -> Sequence[AnyRow]:
        return (
            await self.session.execute(
                select(
                    debtors.c.debtor_id,
                    debtors.c.snapshot_balance_minor,
                    debtors.c.currency,
                    debtors.c.snapshot_as_of,
                ).where(debtors.c.tenant_id == tenant_id)
            )
        ).all()

    async def payments_after_snapshot(
        self, tenant_id: str, debtor_ids: Sequence[str] | None = None
    ) -> Sequence[AnyRow]:
        """Payments the debtors' snapshots cannot reflect yet (all of the tenant's debtors if None).

        Narrowing to payments after the snapshot only saves reading the rest; the balance rule itself
        lives in the domain.
        """
        query = (
            select(
                payments.c.debtor_id,
                payments.c.amount_minor,
                payments.c.currency,
                payments.c.received_at,
            )
            .join(
                debtors,
                (debtors.c.tenant_id == payments.c.tenant_id)
                & (debtors.c.debtor_id == payments.c.debtor_id),
            )
            .where(
                payments.c.tenant_id == tenant_id, payments.c.received_at > debtors.c.snapshot_as_of
            )
        )
        if debtor_ids is not None:
            query = query.where(payments.c.debtor_id.in_(debtor_ids))
        return (await self.session.execute(query)).all()

    async def debtor_timeline(self, tenant_id: str, debtor_id: str) -> Sequence[AnyRow]:
        return (
            await self.session.execute(
                select(
                    timeline.c.occurred_at,
                    timeline.c.topic,
                    timeline.c.event_type,
                    timeline.c.summary,
                    timeline.c.details,
                )
                .where(timeline.c.tenant_id == tenant_id, timeline.c.debtor_id == debtor_id)
                .order_by(timeline.c.occurred_at, timeline.c.id)
            )
        ).all()

    async def activity_by_topic(self, tenant_id: str) -> dict[str, tuple[int, int]]:
        """Per topic: how many events the tenant had and how many distinct debtors they concerned."""
        result = await self.session.execute(
            select(
                timeline.c.topic,
                func.count().label("events"),
                func.count(timeline.c.debtor_id.distinct()).label("debtors"),
            )
            .where(timeline.c.tenant_id == tenant_id)
            .group_by(timeline.c.topic)
        )
        return {row.topic: (row.events, row.debtors) for row in result}

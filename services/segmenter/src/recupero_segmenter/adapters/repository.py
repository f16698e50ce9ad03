"""All of the segmenter's queries, scoped by tenant."""

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_events import DebtImported, PaymentReceived
from recupero_segmenter.adapters.tables import debtors, payments, segment_history
from recupero_segmenter.domain.aging import Placement


class SegmenterRepository:
    """The segmenter's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save_snapshot(self, event: DebtImported) -> None:
        values = {
            "tenant_id": event.tenant_id,
            "debtor_id": event.debtor_id,
            "contact": event.contact.model_dump(mode="json"),
            "snapshot_balance_minor": event.balance.amount_minor,
            "currency": event.balance.currency,
            "snapshot_as_of": event.as_of,
            "oldest_due_on": event.oldest_due_on,
        }
        upsert = insert(debtors).values(values)
        # An older snapshot delivered late never overwrites a newer one.
        await self.session.execute(
            upsert.on_conflict_do_update(
                index_elements=[debtors.c.tenant_id, debtors.c.debtor_id],
                set_={key: upsert.excluded[key] for key in values},
                where=debtors.c.snapshot_as_of <= upsert.excluded.snapshot_as_of,
            )
        )

    async def record_payment(self, event: PaymentReceived) -> bool:
        inserted = await self.session.scalar(
            insert(payments)
            .values(
                tenant_id=event.tenant_id,
                payment_id=event.payment_id,
                debtor_id=event.debtor_id,
                amount_minor=event.amount.amount_minor,
                currency=event.amount.currency,
                received_at=event.received_at,
            )
            .on_conflict_do_nothing()
            .returning(payments.c.payment_id)
        )
        return inserted is not None

    async def debtor_for_update(self, tenant_id: str, debtor_id: str) -> dict[str, Any] | None:
        row = (
            await self.session.execute(
                select(debtors)
                .where(debtors.c.tenant_id == tenant_id, debtors.c.debtor_id == debtor_id)
                .with_for_update()
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def payments_of(
        self, tenant_id: str, debtor_id: str, currency: str
    ) -> list[tuple[int, datetime]]:
        result = await self.session.execute(
            select(payments.c.amount_minor, payments.c.received_at).where(
                payments.c.tenant_id == tenant_id,
                payments.c.debtor_id == debtor_id,
                payments.c.currency == currency,
            )
        )
        return [(row.amount_minor, row.received_at) for row in result]

    async def save_placement(
        self,
        tenant_id: str,
        debtor_id: str,
        placement: Placement,
        balance_minor: int,
        evaluated_at: datetime,
    ) -> None:
        await self.session.execute(
            update(debtors)
            .where(debtors.c.tenant_id == tenant_id, debtors.c.debtor_id == debtor_id)
            .values(
                segment=placement.segment,
                stage=placement.stage.value,
                days_past_due=placement.days_past_due,
                balance_minor=balance_minor,
                ruleset_version=placement.ruleset_version,
                segmented_at=evaluated_at,
            )
        )
        await self.session.execute(
            segment_history.insert().values(
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                segment=placement.segment,
                stage=placement.stage.value,
                days_past_due=placement.days_past_due,
                balance_minor=balance_minor,
                ruleset_version=placement.ruleset_version,
                reason=placement.reason,
                evaluated_at=evaluated_at,
            )
        )

    async def history(self, tenant_id: str, debtor_id: str) -> list[dict[str, Any]]:
        result = await self.session.execute(
            select(segment_history)
            .where(
                segment_history.c.tenant_id == tenant_id, segment_history.c.debtor_id == debtor_id
            )
            .order_by(segment_history.c.id.desc())
        )
        return [dict(row._mapping) for row in result]

"""All of the payments service's queries, scoped by tenant."""

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_events import PaymentReceived
from recupero_payments.adapters.tables import payments


class PaymentsRepository:
    """The payments service's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_payment(self, payment: PaymentReceived) -> bool:
        """False when the tenant already has a payment with this external reference."""
        inserted = await self.session.scalar(
            insert(payments)
            .values(
                payment_id=payment.payment_id,
                tenant_id=payment.tenant_id,
                debtor_id=payment.debtor_id,
                amount_minor=payment.amount.amount_minor,
                currency=payment.amount.currency,
                method=payment.method,
                external_reference=payment.external_reference,
                received_at=payment.received_at,
            )
            .on_conflict_do_nothing()
            .returning(payments.c.payment_id)
        )
        return inserted is not None

    async def by_reference(self, tenant_id: str, external_reference: str) -> dict[str, Any] | None:
        row = (
            await self.session.execute(
                select(payments).where(
                    payments.c.tenant_id == tenant_id,
                    payments.c.external_reference == external_reference,
                )
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def by_id(self, tenant_id: str, payment_id: UUID) -> dict[str, Any] | None:
        row = (
            await self.session.execute(
                select(payments).where(
                    payments.c.tenant_id == tenant_id, payments.c.payment_id == payment_id
                )
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

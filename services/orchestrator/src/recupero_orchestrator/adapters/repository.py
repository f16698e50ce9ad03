"""All of the orchestrator's queries, scoped by tenant."""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_events import DebtorSegmented, PaymentReceived
from recupero_orchestrator.adapters.tables import cases, payments, scheduled_actions
from recupero_orchestrator.domain.strategy import PlannedStep


class OrchestratorRepository:
    """The orchestrator's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert_case(self, event: DebtorSegmented, now: datetime) -> dict[str, Any]:
        values = {
            "tenant_id": event.tenant_id,
            "debtor_id": event.debtor_id,
            "contact": event.contact.model_dump(mode="json"),
            "segment": event.segment,
            "stage": event.stage.value,
            "days_past_due": event.days_past_due,
            "oldest_due_on": event.oldest_due_on,
            "snapshot_balance_minor": event.snapshot_balance.amount_minor,
            "currency": event.snapshot_balance.currency,
            "snapshot_as_of": event.snapshot_as_of,
            "status": "open",
            "opened_at": now,
        }
        upsert = insert(cases).values(values)
        row = (
            await self.session.execute(
                upsert.on_conflict_do_update(
                    index_elements=[cases.c.tenant_id, cases.c.debtor_id],
                    set_={
                        **{
                            key: upsert.excluded[key]
                            for key in values
                            if key not in ("status", "opened_at")
                        },
                        "updated_at": func.now(),
                    },
                ).returning(*cases.c)
            )
        ).one()
        return dict(row._mapping)

    async def case_for_update(self, tenant_id: str, debtor_id: str) -> dict[str, Any] | None:
        row = (
            await self.session.execute(
                select(cases)
                .where(cases.c.tenant_id == tenant_id, cases.c.debtor_id == debtor_id)
                .with_for_update()
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

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

    async def set_case_status(
        self, tenant_id: str, debtor_id: str, status: str, reason: str | None
    ) -> None:
        await self.session.execute(
            update(cases)
            .where(cases.c.tenant_id == tenant_id, cases.c.debtor_id == debtor_id)
            .values(status=status, closed_reason=reason, updated_at=func.now())
        )

    async def reopen_case(self, tenant_id: str, debtor_id: str, now: datetime) -> None:
        await self.session.execute(
            update(cases)
            .where(cases.c.tenant_id == tenant_id, cases.c.debtor_id == debtor_id)
            .values(status="open", closed_reason=None, opened_at=now, updated_at=func.now())
        )

    async def has_actions(self, tenant_id: str, debtor_id: str, since: datetime) -> bool:
        """Whether the case already has a plan made since it (re)opened."""
        found = await self.session.scalar(
            select(scheduled_actions.c.action_id)
            .where(
                scheduled_actions.c.tenant_id == tenant_id,
                scheduled_actions.c.debtor_id == debtor_id,
                scheduled_actions.c.planned_at >= since,
            )
            .limit(1)
        )
        return found is not None

    async def schedule(
        self,
        tenant_id: str,
        debtor_id: str,
        steps: list[PlannedStep],
        planned_at: datetime,
    ) -> None:
        await self.session.execute(
            scheduled_actions.insert(),
            [
                {
                    "action_id": uuid4(),
                    "tenant_id": tenant_id,
                    "debtor_id": debtor_id,
                    "strategy": step.strategy,
                    "channel": step.channel.value,
                    "template": step.template,
                    "due_at": step.due_at,
                    "planned_at": planned_at,
                    "status": "pending",
                }
                for step in steps
            ],
        )

    async def cancel_pending(self, tenant_id: str, debtor_id: str, reason: str) -> int:
        result = await self.session.execute(
            update(scheduled_actions)
            .where(
                scheduled_actions.c.tenant_id == tenant_id,
                scheduled_actions.c.debtor_id == debtor_id,
                scheduled_actions.c.status == "pending",
            )
            .values(status="cancelled", status_reason=reason, cancelled_at=func.now())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def claim_due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Due actions with their case; rows locked so another replica skips them."""
        result = await self.session.execute(
            select(
                scheduled_actions,
                cases.c.status.label("case_status"),
                cases.c.contact,
                cases.c.days_past_due,
                cases.c.oldest_due_on,
                cases.c.snapshot_balance_minor,
                cases.c.currency,
                cases.c.snapshot_as_of,
            )
            .join(
                cases,
                and_(
                    cases.c.tenant_id == scheduled_actions.c.tenant_id,
                    cases.c.debtor_id == scheduled_actions.c.debtor_id,
                ),
            )
            .where(scheduled_actions.c.status == "pending", scheduled_actions.c.due_at <= now)
            .order_by(scheduled_actions.c.due_at)
            .limit(limit)
            .with_for_update(of=scheduled_actions, skip_locked=True)
        )
        return [dict(row._mapping) for row in result]

    async def mark_fired(self, action_ids: list[UUID], now: datetime) -> None:
        if action_ids:
            await self.session.execute(
                update(scheduled_actions)
                .where(scheduled_actions.c.action_id.in_(action_ids))
                .values(status="fired", fired_at=now)
            )

    async def actions_of(self, tenant_id: str, debtor_id: str) -> list[dict[str, Any]]:
        result = await self.session.execute(
            select(scheduled_actions)
            .where(
                scheduled_actions.c.tenant_id == tenant_id,
                scheduled_actions.c.debtor_id == debtor_id,
            )
            .order_by(scheduled_actions.c.due_at)
        )
        return [dict(row._mapping) for row in result]

"""All of notifier's queries. Every statement is scoped by tenant."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_events import ActionDue
from recupero_notifier.adapters.tables import deliveries


class NotifierRepository:
    """Notifier's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def delivery_status(self, tenant_id: str, action_id: UUID) -> str | None:
        status: str | None = await self.session.scalar(
            select(deliveries.c.status).where(
                deliveries.c.tenant_id == tenant_id, deliveries.c.action_id == action_id
            )
        )
        return status

    async def record_attempt(self, action: ActionDue, message_id: str) -> int | None:
        """Mark the action `sending` and count the attempt; returns the attempt number.

        None when the action is already `sent` (or its id belongs to another tenant): the caller
        must not contact the debtor.
        """
        upsert = insert(deliveries).values(
            action_id=action.action_id,
            tenant_id=action.tenant_id,
            debtor_id=action.debtor_id,
            channel=action.channel.value,
            template=action.template,
            status="sending",
            message_id=message_id,
            attempts=1,
            first_attempt_at=func.now(),
        )
        attempt: int | None = await self.session.scalar(
            upsert.on_conflict_do_update(
                index_elements=[deliveries.c.action_id],
                set_={
                    "status": "sending",
                    "message_id": message_id,
                    "attempts": deliveries.c.attempts + 1,
                    "first_attempt_at": func.coalesce(deliveries.c.first_attempt_at, func.now()),
                },
                where=(deliveries.c.status != "sent")
                & (deliveries.c.tenant_id == upsert.excluded.tenant_id),
            ).returning(deliveries.c.attempts)
        )
        return attempt

    async def mark_sent(self, tenant_id: str, action_id: UUID, sent_at: datetime) -> None:
        updated = await self.session.scalar(
            update(deliveries)
            .where(deliveries.c.tenant_id == tenant_id, deliveries.c.action_id == action_id)
            .values(status="sent", sent_at=sent_at)
            .returning(deliveries.c.action_id)
        )
        if updated is None:
            raise LookupError(f"no delivery recorded for action {action_id} of tenant {tenant_id}")

    async def record_unsupported_channel(self, action: ActionDue) -> None:
        await self.session.execute(
            insert(deliveries)
            .values(
                action_id=action.action_id,
                tenant_id=action.tenant_id,
                debtor_id=action.debtor_id,
                channel=action.channel.value,
                template=action.template,
                status="unsupported_channel",
            )
            .on_conflict_do_nothing()
        )

"""All of the orchestrator's queries, scoped by tenant."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import and_, delete, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_events import DebtorSegmented, EventPayload, PaymentReceived, PromiseRegistered
from recupero_orchestrator.adapters import batches
from recupero_orchestrator.adapters.batches import DebtorKey
from recupero_orchestrator.adapters.tables import (
    agent_tasks,
    authorised_channels,
    cases,
    channel_authorisation_log,
    channel_costs,
    contact_decisions,
    contact_history,
    holds,
    opt_outs,
    payments,
    policy_overrides,
    promises,
    scheduled_actions,
    schema,
    segment_variants,
    strategy_versions,
    variant_assignments,
)
from recupero_orchestrator.domain.strategy import PlannedStep
from recupero_runtime.db import asyncpg_connection
from recupero_runtime.outbox import insert_payload_batches

Row = dict[str, Any]


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
            "zone": event.zone,
            "propensity_score": event.propensity_score,
            "status": "open",
            "opened_at": now,
        }
        upsert = insert(cases).values(values)
        # Not every placement looks zone and score up (the segmenter's bulk re-placements do
        # not): what is not said is kept.
        kept = {
            key: func.coalesce(upsert.excluded[key], cases.c[key])
            for key in ("zone", "propensity_score")
        }
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
                        **kept,
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
        """Due actions with their case's status; rows locked so another replica skips them."""
        return await batches.claim_due(await asyncpg_connection(self.session), now, limit)

    async def mark_fired(self, action_ids: list[UUID], now: datetime) -> None:
        if action_ids:
            await self.session.execute(
                update(scheduled_actions)
                .where(scheduled_actions.c.action_id.in_(action_ids))
                .values(status="fired", fired_at=now, happened_at=now)
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

    # --- Strategies and variants ---------------------------------------------------------------

    async def strategy_version(self, tenant_id: str, strategy_id: str, version: int) -> Row | None:
        row = (
            await self.session.execute(
                select(strategy_versions).where(
                    strategy_versions.c.tenant_id == tenant_id,
                    strategy_versions.c.strategy_id == strategy_id,
                    strategy_versions.c.version == version,
                )
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def add_strategy_version(
        self, tenant_id: str, strategy_id: str, version: int, document: dict[str, Any]
    ) -> None:
        await self.session.execute(
            insert(strategy_versions).values(
                tenant_id=tenant_id,
                strategy_id=strategy_id,
                version=version,
                document=document,
                status="draft",
            )
        )

    async def replace_draft(
        self, tenant_id: str, strategy_id: str, version: int, document: dict[str, Any]
    ) -> None:
        await self.session.execute(
            update(strategy_versions)
            .where(
                strategy_versions.c.tenant_id == tenant_id,
                strategy_versions.c.strategy_id == strategy_id,
                strategy_versions.c.version == version,
            )
            .values(document=document)
        )

    async def strategy_versions_of(self, tenant_id: str, strategy_id: str | None) -> list[Row]:
        query = select(strategy_versions).where(strategy_versions.c.tenant_id == tenant_id)
        if strategy_id is not None:
            query = query.where(strategy_versions.c.strategy_id == strategy_id)
        result = await self.session.execute(
            query.order_by(strategy_versions.c.strategy_id, strategy_versions.c.version)
        )
        return [dict(row._mapping) for row in result]

    async def activate_strategy(
        self, tenant_id: str, strategy_id: str, version: int, now: datetime
    ) -> None:
        """The version becomes the active one; the one active before is retired."""
        mine = and_(
            strategy_versions.c.tenant_id == tenant_id,
            strategy_versions.c.strategy_id == strategy_id,
        )
        await self.session.execute(
            update(strategy_versions)
            .where(mine, strategy_versions.c.status == "active")
            .values(status="retired")
        )
        await self.session.execute(
            update(strategy_versions)
            .where(mine, strategy_versions.c.version == version)
            .values(status="active", activated_at=now)
        )

    async def active_strategy(self, tenant_id: str, strategy_id: str) -> Row | None:
        row = (
            await self.session.execute(
                select(strategy_versions).where(
                    strategy_versions.c.tenant_id == tenant_id,
                    strategy_versions.c.strategy_id == strategy_id,
                    strategy_versions.c.status == "active",
                )
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def active_strategy_for_segment(self, tenant_id: str, segment: str) -> Row | None:
        """An active strategy whose document lists the segment (the first by id)."""
        row = (
            await self.session.execute(
                select(strategy_versions)
                .where(
                    strategy_versions.c.tenant_id == tenant_id,
                    strategy_versions.c.status == "active",
                    strategy_versions.c.document.contains({"segments": [segment]}),
                )
                .order_by(strategy_versions.c.strategy_id)
                .limit(1)
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def replace_variants(
        self, tenant_id: str, segment: str, shares: list[tuple[str, int]]
    ) -> None:
        await self.session.execute(
            segment_variants.delete().where(
                segment_variants.c.tenant_id == tenant_id, segment_variants.c.segment == segment
            )
        )
        await self.session.execute(
            segment_variants.insert(),
            [
                {
                    "tenant_id": tenant_id,
                    "segment": segment,
                    "strategy_id": strategy_id,
                    "percent": percent,
                    "position": position,
                }
                for position, (strategy_id, percent) in enumerate(shares)
            ],
        )

    async def variants_of(self, tenant_id: str, segment: str) -> list[tuple[str, int]]:
        result = await self.session.execute(
            select(segment_variants.c.strategy_id, segment_variants.c.percent)
            .where(segment_variants.c.tenant_id == tenant_id, segment_variants.c.segment == segment)
            .order_by(segment_variants.c.position)
        )
        return [(row.strategy_id, row.percent) for row in result]

    async def assigned_variant(self, tenant_id: str, segment: str, debtor_id: str) -> str | None:
        found: str | None = await self.session.scalar(
            select(variant_assignments.c.strategy_id).where(
                variant_assignments.c.tenant_id == tenant_id,
                variant_assignments.c.segment == segment,
                variant_assignments.c.debtor_id == debtor_id,
            )
        )
        return found

    async def assign_variant(
        self, tenant_id: str, segment: str, debtor_id: str, strategy_id: str, now: datetime
    ) -> None:
        await self.session.execute(
            insert(variant_assignments)
            .values(
                tenant_id=tenant_id,
                segment=segment,
                debtor_id=debtor_id,
                strategy_id=strategy_id,
                assigned_at=now,
            )
            .on_conflict_do_nothing()
        )

    async def variant_results(self, tenant_id: str, segment: str) -> list[Row]:
        """Per variant of the segment: debtors, cures, contacts, promises and money collected
        since each debtor was assigned (one row per variant and payment currency)."""
        result = await self.session.execute(
            text(
                """
                SELECT a.strategy_id,
                       count(*) AS debtors,
                       count(*) FILTER (WHERE c.status = 'closed') AS cured,
                       count(*) FILTER (WHERE EXISTS (
                           SELECT 1 FROM orchestrator.contact_history h
                           WHERE h.tenant_id = a.tenant_id AND h.debtor_id = a.debtor_id
                             AND h.contacted_at >= a.assigned_at)) AS contacted,
                       coalesce(sum((SELECT count(*) FROM orchestrator.contact_history h
                           WHERE h.tenant_id = a.tenant_id AND h.debtor_id = a.debtor_id
                             AND h.contacted_at >= a.assigned_at)), 0) AS contacts,
                       coalesce(sum((SELECT count(*) FROM orchestrator.promises p
                           WHERE p.tenant_id = a.tenant_id AND p.debtor_id = a.debtor_id
                             AND p.registered_at >= a.assigned_at)), 0) AS promises_made,
                       coalesce(sum((SELECT count(*) FROM orchestrator.promises p
                           WHERE p.tenant_id = a.tenant_id AND p.debtor_id = a.debtor_id
                             AND p.registered_at >= a.assigned_at AND p.status = 'kept')), 0)
                           AS promises_kept
                FROM orchestrator.variant_assignments a
                LEFT JOIN orchestrator.cases c
                  ON c.tenant_id = a.tenant_id AND c.debtor_id = a.debtor_id
                WHERE a.tenant_id = :tenant AND a.segment = :segment
                GROUP BY a.strategy_id
                ORDER BY a.strategy_id
                """
            ),
            {"tenant": tenant_id, "segment": segment},
        )
        rows = [dict(row._mapping) for row in result]
        collected = await self.session.execute(
            text(
                """
                SELECT a.strategy_id, p.currency, sum(p.amount_minor) AS amount_minor
                FROM orchestrator.variant_assignments a
                JOIN orchestrator.payments p
                  ON p.tenant_id = a.tenant_id AND p.debtor_id = a.debtor_id
                 AND p.received_at >= a.assigned_at
                WHERE a.tenant_id = :tenant AND a.segment = :segment
                GROUP BY a.strategy_id, p.currency
                """
            ),
            {"tenant": tenant_id, "segment": segment},
        )
        by_strategy: dict[str, list[Row]] = {}
        for paid in collected:
            by_strategy.setdefault(paid.strategy_id, []).append(
                {"amount_minor": int(paid.amount_minor), "currency": paid.currency}
            )
        for row in rows:
            row["collected"] = by_strategy.get(row["strategy_id"], [])
        return rows

    # --- The debtor's case under a strategy ---------------------------------------------------

    async def follow_strategy(
        self,
        tenant_id: str,
        debtor_id: str,
        strategy: tuple[str, int] | None,
        entered_at: datetime,
    ) -> None:
        strategy_id, version = strategy if strategy else (None, None)
        await self.session.execute(
            update(cases)
            .where(cases.c.tenant_id == tenant_id, cases.c.debtor_id == debtor_id)
            .values(
                strategy_id=strategy_id,
                strategy_version=version,
                segment_entered_at=entered_at,
                plan_status=None,
                plan_reason=None,
                updated_at=func.now(),
            )
        )

    async def set_plan_status(
        self, tenant_id: str, debtor_id: str, status: str, reason: str
    ) -> None:
        await self.session.execute(
            update(cases)
            .where(cases.c.tenant_id == tenant_id, cases.c.debtor_id == debtor_id)
            .values(plan_status=status, plan_reason=reason)
        )

    async def record_reply(self, tenant_id: str, debtor_id: str, at: datetime) -> None:
        await self.session.execute(
            update(cases)
            .where(cases.c.tenant_id == tenant_id, cases.c.debtor_id == debtor_id)
            .values(replied_at=func.greatest(func.coalesce(cases.c.replied_at, at), at))
        )

    async def strategy_actions(self, tenant_id: str, debtor_id: str, key_prefix: str) -> list[Row]:
        """The actions of one strategy run (one strategy version, one segment entry)."""
        result = await self.session.execute(
            select(scheduled_actions).where(
                scheduled_actions.c.tenant_id == tenant_id,
                scheduled_actions.c.debtor_id == debtor_id,
                scheduled_actions.c.action_key.startswith(key_prefix + "/", autoescape=True),
            )
        )
        return [dict(row._mapping) for row in result]

    async def propose(self, values: Row) -> Row | None:
        """Store a planner proposal under its key. A cancelled action proposed again comes back
        (a paused strategy resumes); a pending one becomes `skipped` when the proposal is a skip;
        anything else is left alone. Returns the row when it changed."""
        statement = insert(scheduled_actions).values(action_id=uuid4(), **values)
        revivable = ["cancelled"] if values["status"] == "pending" else ["cancelled", "pending"]
        row = (
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "debtor_id", "action_key"],
                    index_where=scheduled_actions.c.action_key.is_not(None),
                    set_={
                        "status": statement.excluded.status,
                        "due_at": statement.excluded.due_at,
                        "status_reason": statement.excluded.status_reason,
                        "happened_at": statement.excluded.happened_at,
                        "planned_at": statement.excluded.planned_at,
                        "cancelled_at": None,
                    },
                    where=scheduled_actions.c.status.in_(revivable),
                ).returning(*scheduled_actions.c)
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def cancel_pending_of_run(
        self, tenant_id: str, debtor_id: str, key_prefix: str, reason: str
    ) -> list[Row]:
        result = await self.session.execute(
            update(scheduled_actions)
            .where(
                scheduled_actions.c.tenant_id == tenant_id,
                scheduled_actions.c.debtor_id == debtor_id,
                scheduled_actions.c.status == "pending",
                scheduled_actions.c.action_key.startswith(key_prefix + "/", autoescape=True),
            )
            .values(status="cancelled", status_reason=reason, cancelled_at=func.now())
            .returning(*scheduled_actions.c)
        )
        return [dict(row._mapping) for row in result]

    async def settle_action(
        self, action_id: UUID, status: str, now: datetime, reason: str | None = None
    ) -> None:
        """Record what became of a due action: fired, dropped, skipped or cancelled."""
        values: Row = {"status": status, "status_reason": reason, "happened_at": now}
        if status == "fired":
            values["fired_at"] = now
        if status == "cancelled":
            values["cancelled_at"] = now
        await self.session.execute(
            update(scheduled_actions)
            .where(scheduled_actions.c.action_id == action_id)
            .values(**values)
        )

    async def reschedule(self, action_id: UUID, due_at: datetime) -> None:
        await self.session.execute(
            update(scheduled_actions)
            .where(scheduled_actions.c.action_id == action_id)
            .values(due_at=due_at)
        )

    # --- Many debtors at once (firing a claimed batch) -----------------------------------------

    async def cases_of(self, keys: Sequence[DebtorKey]) -> dict[DebtorKey, Row]:
        return await batches.cases_of(await asyncpg_connection(self.session), keys)

    async def debtor_facts(
        self, keys: Sequence[DebtorKey]
    ) -> dict[str, dict[DebtorKey, list[Row]]]:
        """What planning and the contact policy read about each debtor, one query per table."""
        return await batches.debtor_facts(await asyncpg_connection(self.session), keys)

    async def settle_actions(
        self, settled: Sequence[tuple[UUID, str, str | None]], now: datetime
    ) -> None:
        await batches.settle_actions(await asyncpg_connection(self.session), settled, now)

    async def reschedule_actions(self, moved: Sequence[tuple[UUID, datetime]]) -> None:
        await batches.reschedule_actions(await asyncpg_connection(self.session), moved)

    async def record_decisions(self, decisions: Sequence[Row]) -> None:
        await batches.insert_decisions(await asyncpg_connection(self.session), decisions)

    async def record_contacts(
        self, contacts: Sequence[tuple[str, str, str, UUID]], at: datetime
    ) -> None:
        await batches.insert_contacts(await asyncpg_connection(self.session), contacts, at)

    async def publish_in_batches(self, events: Sequence[EventPayload], source: str) -> None:
        """Many events through the outbox, a thousand to a row (`insert_payload_batches`)."""
        await insert_payload_batches(self.session, schema.outbox, events, source)

    async def add_plans(
        self, schedule: list[tuple[Any, ...]], statuses: list[tuple[str, str, str, str]]
    ) -> int:
        """New schedule rows planned in memory and changed plan statuses."""
        return await batches.write_plan(await asyncpg_connection(self.session), schedule, statuses)

    async def action(self, tenant_id: str, action_id: UUID) -> Row | None:
        row = (
            await self.session.execute(
                select(scheduled_actions).where(
                    scheduled_actions.c.tenant_id == tenant_id,
                    scheduled_actions.c.action_id == action_id,
                )
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def record_delivery(
        self, tenant_id: str, action_id: UUID, delivery: str, at: datetime
    ) -> None:
        """What the provider (or an agent) reported. Never goes back: read beats delivered beats
        sent; a failure after delivery is ignored."""
        rank = {"sent": 1, "failed": 2, "delivered": 3, "read": 4}
        current = func.coalesce(scheduled_actions.c.delivery, "")
        worse = [name for name, value in rank.items() if value < rank[delivery]]
        await self.session.execute(
            update(scheduled_actions)
            .where(
                scheduled_actions.c.tenant_id == tenant_id,
                scheduled_actions.c.action_id == action_id,
                current.in_([*worse, ""]),
            )
            .values(
                delivery=delivery,
                happened_at=at if delivery == "sent" else scheduled_actions.c.happened_at,
            )
        )

    # --- Contact policy data ------------------------------------------------------------------

    async def contact_restrictions(self, tenant_id: str, debtor_id: str) -> Row:
        """Opt-outs, authorised channels (None when none recorded) and holds of a debtor."""
        mine_out = and_(opt_outs.c.tenant_id == tenant_id, opt_outs.c.debtor_id == debtor_id)
        mine_auth = and_(
            authorised_channels.c.tenant_id == tenant_id,
            authorised_channels.c.debtor_id == debtor_id,
        )
        out = (await self.session.scalars(select(opt_outs.c.channel).where(mine_out))).all()
        authorised = (
            await self.session.scalars(select(authorised_channels.c.channel).where(mine_auth))
        ).all()
        hold_rows = await self.session.execute(
            select(holds.c.kind, holds.c.since, holds.c.until).where(
                holds.c.tenant_id == tenant_id, holds.c.debtor_id == debtor_id
            )
        )
        return {
            "opted_out": list(out),
            "authorised": list(authorised) or None,
            "holds": [dict(row._mapping) for row in hold_rows],
        }

    async def add_opt_out(
        self, tenant_id: str, debtor_id: str, channel: str, now: datetime
    ) -> None:
        await self.session.execute(
            insert(opt_outs)
            .values(tenant_id=tenant_id, debtor_id=debtor_id, channel=channel, opted_out_at=now)
            .on_conflict_do_nothing()
        )

    async def authorisations_of(self, tenant_id: str, debtor_id: str) -> list[Row]:
        """The channels the debtor has authorised now, with how and when."""
        result = await self.session.execute(
            select(authorised_channels)
            .where(
                authorised_channels.c.tenant_id == tenant_id,
                authorised_channels.c.debtor_id == debtor_id,
            )
            .order_by(authorised_channels.c.channel)
        )
        return [dict(row._mapping) for row in result]

    async def authorise_channel(self, values: Row) -> None:
        """Record (or renew, with its new evidence) one authorised channel."""
        statement = insert(authorised_channels).values(values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "debtor_id", "channel"],
                set_={
                    column: statement.excluded[column]
                    for column in ("authorised_at", "evidence", "source", "recorded_at")
                },
            )
        )

    async def revoke_channel(self, tenant_id: str, debtor_id: str, channel: str) -> bool:
        """Delete one authorised channel; False when it was not authorised."""
        deleted = await self.session.scalar(
            delete(authorised_channels)
            .where(
                authorised_channels.c.tenant_id == tenant_id,
                authorised_channels.c.debtor_id == debtor_id,
                authorised_channels.c.channel == channel,
            )
            .returning(authorised_channels.c.channel)
        )
        return deleted is not None

    async def log_authorisation_change(self, values: Row) -> None:
        await self.session.execute(channel_authorisation_log.insert().values(**values))

    async def authorisation_log(self, tenant_id: str, debtor_id: str) -> list[Row]:
        result = await self.session.execute(
            select(channel_authorisation_log)
            .where(
                channel_authorisation_log.c.tenant_id == tenant_id,
                channel_authorisation_log.c.debtor_id == debtor_id,
            )
            .order_by(channel_authorisation_log.c.entry_id)
        )
        return [dict(row._mapping) for row in result]

    async def channels_revoked_through_api(self, tenant_id: str, debtor_id: str) -> list[str]:
        """Channels whose latest change was a revocation recorded through the API."""
        log = channel_authorisation_log.c
        latest = (
            select(log.channel, log.change, log.source)
            .where(log.tenant_id == tenant_id, log.debtor_id == debtor_id)
            .ext(distinct_on(log.channel))
            .order_by(log.channel, log.entry_id.desc())
            .subquery()
        )
        rows = await self.session.scalars(
            select(latest.c.channel).where(latest.c.change == "revoked", latest.c.source == "api")
        )
        return list(rows)

    async def add_hold(
        self,
        tenant_id: str,
        debtor_id: str,
        kind: str,
        since: datetime,
        until: datetime | None,
        reason: str,
    ) -> UUID:
        hold_id = uuid4()
        await self.session.execute(
            holds.insert().values(
                hold_id=hold_id,
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                kind=kind,
                since=since,
                until=until,
                reason=reason,
            )
        )
        return hold_id

    async def contacts_of(self, tenant_id: str, debtor_id: str) -> list[Row]:
        result = await self.session.execute(
            select(contact_history).where(
                contact_history.c.tenant_id == tenant_id, contact_history.c.debtor_id == debtor_id
            )
        )
        return [dict(row._mapping) for row in result]

    async def record_contact(
        self,
        tenant_id: str,
        debtor_id: str,
        channel: str,
        at: datetime,
        conversation: bool,
        action_id: UUID | None,
    ) -> None:
        await self.session.execute(
            contact_history.insert().values(
                contact_id=uuid4(),
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                channel=channel,
                contacted_at=at,
                conversation=conversation,
                action_id=action_id,
            )
        )

    async def policy_override(self, tenant_id: str, country: str) -> dict[str, Any] | None:
        document: dict[str, Any] | None = await self.session.scalar(
            select(policy_overrides.c.document).where(
                policy_overrides.c.tenant_id == tenant_id, policy_overrides.c.country == country
            )
        )
        return document

    async def save_policy_override(
        self, tenant_id: str, country: str, document: dict[str, Any]
    ) -> None:
        statement = insert(policy_overrides).values(
            tenant_id=tenant_id, country=country, document=document
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "country"],
                set_={"document": statement.excluded.document, "updated_at": func.now()},
            )
        )

    async def record_decision(self, values: Row) -> None:
        await self.session.execute(contact_decisions.insert().values(decision_id=uuid4(), **values))

    async def decisions_of(self, tenant_id: str, debtor_id: str) -> list[Row]:
        result = await self.session.execute(
            select(contact_decisions)
            .where(
                contact_decisions.c.tenant_id == tenant_id,
                contact_decisions.c.debtor_id == debtor_id,
            )
            .order_by(contact_decisions.c.decided_at, contact_decisions.c.requested_at)
        )
        return [dict(row._mapping) for row in result]

    # --- Promises -----------------------------------------------------------------------------

    async def record_promise(
        self, event: PromiseRegistered, deadline: datetime, strategy_id: str | None
    ) -> bool:
        """Store a promise; a newer one replaces the debtor's pending promise. False if known."""
        inserted = await self.session.scalar(
            insert(promises)
            .values(
                tenant_id=event.tenant_id,
                promise_id=event.promise_id,
                debtor_id=event.debtor_id,
                amount_minor=event.amount.amount_minor,
                currency=event.amount.currency,
                promised_on=event.promised_on,
                source=event.source,
                registered_at=event.registered_at,
                deadline=deadline,
                status="pending",
                strategy_id=strategy_id,
            )
            .on_conflict_do_nothing()
            .returning(promises.c.promise_id)
        )
        if inserted is None:
            return False
        await self.session.execute(
            update(promises)
            .where(
                promises.c.tenant_id == event.tenant_id,
                promises.c.debtor_id == event.debtor_id,
                promises.c.status == "pending",
                promises.c.registered_at < event.registered_at,
            )
            .values(status="replaced")
        )
        return True

    async def promises_of(self, tenant_id: str, debtor_id: str) -> list[Row]:
        result = await self.session.execute(
            select(promises).where(
                promises.c.tenant_id == tenant_id,
                promises.c.debtor_id == debtor_id,
                promises.c.status != "replaced",
            )
        )
        return [dict(row._mapping) for row in result]

    async def claim_due_promises(self, now: datetime, limit: int) -> list[Row]:
        """Pending promises past their deadline, with their case locked too (see `claim_due`)."""
        result = await self.session.execute(
            select(promises)
            .join(
                cases,
                and_(
                    cases.c.tenant_id == promises.c.tenant_id,
                    cases.c.debtor_id == promises.c.debtor_id,
                ),
            )
            .where(promises.c.status == "pending", promises.c.deadline <= now)
            .order_by(promises.c.deadline)
            .limit(limit)
            .with_for_update(of=[promises, cases], skip_locked=True)
        )
        return [dict(row._mapping) for row in result]

    async def resolve_promise(
        self, tenant_id: str, promise_id: UUID, status: str, paid_minor: int, now: datetime
    ) -> None:
        await self.session.execute(
            update(promises)
            .where(promises.c.tenant_id == tenant_id, promises.c.promise_id == promise_id)
            .values(status=status, paid_minor=paid_minor, resolved_at=now)
        )

    # --- Agent work ---------------------------------------------------------------------------

    async def create_agent_task(self, values: Row) -> None:
        await self.session.execute(
            insert(agent_tasks)
            .values(task_id=uuid4(), status="open", **values)
            .on_conflict_do_nothing(index_elements=["action_id"])
        )

    async def cancel_open_tasks(self, tenant_id: str, debtor_id: str, reason: str) -> None:
        await self.session.execute(
            update(agent_tasks)
            .where(
                agent_tasks.c.tenant_id == tenant_id,
                agent_tasks.c.debtor_id == debtor_id,
                agent_tasks.c.status.in_(["open", "assigned"]),
            )
            .values(status="cancelled", note=reason)
        )

    async def next_task(
        self,
        tenant_id: str,
        agent_id: str,
        queue: str | None,
        skill: str | None,
        now: datetime,
        zones: list[str] | None = None,
    ) -> Row | None:
        """The agent's task in hand, else the open task of highest priority, taken so that no
        other agent (or replica) gets it."""
        in_hand = (
            await self.session.execute(
                select(agent_tasks).where(
                    agent_tasks.c.tenant_id == tenant_id,
                    agent_tasks.c.agent_id == agent_id,
                    agent_tasks.c.status == "assigned",
                )
            )
        ).first()
        if in_hand is not None:
            return dict(in_hand._mapping)
        query = select(agent_tasks.c.task_id).where(
            agent_tasks.c.tenant_id == tenant_id, agent_tasks.c.status == "open"
        )
        if queue is not None:
            query = query.where(agent_tasks.c.queue == queue)
        if skill is not None:
            query = query.where(agent_tasks.c.skill == skill)
        if zones:
            query = query.where(agent_tasks.c.zone.in_(zones))
        task_id = await self.session.scalar(
            query.order_by(agent_tasks.c.priority.desc(), agent_tasks.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if task_id is None:
            return None
        row = (
            await self.session.execute(
                update(agent_tasks)
                .where(agent_tasks.c.task_id == task_id)
                .values(status="assigned", agent_id=agent_id, assigned_at=now)
                .returning(*agent_tasks.c)
            )
        ).one()
        return dict(row._mapping)

    async def task(self, tenant_id: str, task_id: UUID, *, lock: bool = False) -> Row | None:
        query = select(agent_tasks).where(
            agent_tasks.c.tenant_id == tenant_id, agent_tasks.c.task_id == task_id
        )
        row = (await self.session.execute(query.with_for_update() if lock else query)).one_or_none()
        return None if row is None else dict(row._mapping)

    async def complete_task(
        self, task_id: UUID, agent_id: str, outcome: str, note: str | None, now: datetime
    ) -> None:
        await self.session.execute(
            update(agent_tasks)
            .where(agent_tasks.c.task_id == task_id)
            .values(status="done", agent_id=agent_id, outcome=outcome, note=note, completed_at=now)
        )

    async def tasks_of(self, tenant_id: str, agent_id: str | None) -> list[Row]:
        query = select(agent_tasks).where(agent_tasks.c.tenant_id == tenant_id)
        if agent_id is not None:
            query = query.where(agent_tasks.c.agent_id == agent_id)
        result = await self.session.execute(
            query.order_by(agent_tasks.c.status, agent_tasks.c.priority.desc())
        )
        return [dict(row._mapping) for row in result]

    async def queue_depths(self, tenant_id: str) -> list[Row]:
        """Open and assigned tasks per stage, skill and zone: what a supervisor watches."""
        result = await self.session.execute(
            select(
                agent_tasks.c.queue,
                agent_tasks.c.skill,
                agent_tasks.c.zone,
                func.count().filter(agent_tasks.c.status == "open").label("open"),
                func.count().filter(agent_tasks.c.status == "assigned").label("assigned"),
                func.max(agent_tasks.c.priority)
                .filter(agent_tasks.c.status == "open")
                .label("top_priority"),
                func.min(agent_tasks.c.created_at)
                .filter(agent_tasks.c.status == "open")
                .label("oldest_open_at"),
            )
            .where(
                agent_tasks.c.tenant_id == tenant_id,
                agent_tasks.c.status.in_(["open", "assigned"]),
            )
            .group_by(agent_tasks.c.queue, agent_tasks.c.skill, agent_tasks.c.zone)
            .order_by(agent_tasks.c.zone.nulls_last(), agent_tasks.c.queue, agent_tasks.c.skill)
        )
        return [dict(row._mapping) for row in result]

    # --- Figures: costs, promises, contact decisions -------------------------------------------

    async def channel_costs(self, tenant_id: str) -> Row | None:
        row = (
            await self.session.execute(
                select(channel_costs.c.currency, channel_costs.c.per_contact).where(
                    channel_costs.c.tenant_id == tenant_id
                )
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def save_channel_costs(
        self, tenant_id: str, currency: str, per_contact: dict[str, int]
    ) -> None:
        statement = insert(channel_costs).values(
            tenant_id=tenant_id, currency=currency, per_contact=per_contact
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id"],
                set_={
                    "currency": statement.excluded.currency,
                    "per_contact": statement.excluded.per_contact,
                    "updated_at": func.now(),
                },
            )
        )

    async def variant_contacts_by_channel(
        self, tenant_id: str, segment: str
    ) -> list[tuple[str, str, int]]:
        """(variant, channel, contacts since each debtor's assignment) for the segment."""
        result = await self.session.execute(
            text(
                """
                SELECT a.strategy_id, h.channel, count(*) AS contacts
                FROM orchestrator.variant_assignments a
                JOIN orchestrator.contact_history h
                  ON h.tenant_id = a.tenant_id AND h.debtor_id = a.debtor_id
                 AND h.contacted_at >= a.assigned_at
                WHERE a.tenant_id = :tenant AND a.segment = :segment
                GROUP BY a.strategy_id, h.channel
                """
            ),
            {"tenant": tenant_id, "segment": segment},
        )
        return [(row.strategy_id, row.channel, int(row.contacts)) for row in result]

    async def promise_figures(
        self,
        tenant_id: str,
        registered_from: datetime | None,
        registered_before: datetime | None,
        period: str | None,
        source: str | None,
    ) -> list[Row]:
        """Promises by outcome per source, and per period of registration (`period_start`, UTC
        midnight of the day, ISO week's Monday or month) when `period` is day, week or month."""
        keys: list[Any] = [promises.c.source]
        if period is not None:
            assert period in ("day", "week", "month")  # a unit name, not a value: inlined
            unit: Any = literal_column(f"'{period}'")
            truncated = func.date_trunc(unit, promises.c.registered_at, literal_column("'UTC'"))
            keys.insert(0, truncated.label("period_start"))
        counts = [
            func.count().filter(promises.c.status == status).label(status)
            for status in ("kept", "partially_kept", "broken", "pending", "replaced")
        ]
        query = select(*keys, func.count().label("made"), *counts).where(
            promises.c.tenant_id == tenant_id
        )
        if registered_from is not None:
            query = query.where(promises.c.registered_at >= registered_from)
        if registered_before is not None:
            query = query.where(promises.c.registered_at < registered_before)
        if source is not None:
            query = query.where(promises.c.source == source)
        positions: list[Any] = [literal_column(str(n)) for n in range(1, len(keys) + 1)]
        result = await self.session.execute(query.group_by(*positions).order_by(*positions))
        return [dict(row._mapping) for row in result]

    async def decision_summary(self, tenant_id: str, since: datetime | None) -> list[Row]:
        """Contact decisions per verdict and rule: how many, for how many debtors, and the
        earliest slot a moved action went to."""
        query = select(
            contact_decisions.c.verdict,
            contact_decisions.c.rule_id,
            func.count().label("decisions"),
            func.count(contact_decisions.c.debtor_id.distinct()).label("debtors"),
            func.min(contact_decisions.c.moved_to).label("earliest_moved_to"),
        ).where(contact_decisions.c.tenant_id == tenant_id)
        if since is not None:
            query = query.where(contact_decisions.c.decided_at >= since)
        result = await self.session.execute(
            query.group_by(contact_decisions.c.verdict, contact_decisions.c.rule_id).order_by(
                contact_decisions.c.verdict, func.count().desc()
            )
        )
        return [dict(row._mapping) for row in result]

    async def debtors_decided(self, tenant_id: str, since: datetime | None) -> int:
        """Debtors with at least one contact decision (since the instant, if given)."""
        query = select(func.count(contact_decisions.c.debtor_id.distinct())).where(
            contact_decisions.c.tenant_id == tenant_id
        )
        if since is not None:
            query = query.where(contact_decisions.c.decided_at >= since)
        return int(await self.session.scalar(query) or 0)

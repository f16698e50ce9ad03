"""All of the segmenter's queries, scoped by tenant."""

import json
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    Select,
    Text,
    and_,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    text,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_events import (
    DebtImported,
    DebtorSegmented,
    PaymentReceived,
    PromiseRegistered,
    Topic,
    event_type_of,
)
from recupero_runtime.db import prepare_bulk_transaction
from recupero_runtime.outbox import insert_event_batches
from recupero_segmenter.adapters.rule_sql import RuleSql
from recupero_segmenter.adapters.tables import (
    aging_clock,
    debtors,
    payments,
    placements,
    promises,
    rulesets,
    schema,
    segment_history,
)
from recupero_segmenter.domain.aging import Placement
from recupero_segmenter.domain.evaluation import DebtorFacts, reasons
from recupero_segmenter.domain.rules import RuleSet

# The debtor's facts as `DebtorFacts` fields, read from the row of the same names.
FACT_COLUMNS = (
    "balance_minor",
    "currency",
    "oldest_due_on",
    "time_zone",
    "country",
    "product",
    "zone",
    "customer_type",
    "risk_score",
    "preferred_channel",
    "documents_count",
    "custom",
    "actions_count",
    "last_contact_channel",
    "last_contact_on",
    "promises_made",
    "promises_kept",
    "promises_broken",
    "last_promise_on",
    "payments_count",
    "last_payment_on",
)


def facts_of(row: dict[str, Any]) -> DebtorFacts:
    values = {name: row[name] for name in FACT_COLUMNS}
    if values["balance_minor"] is None:
        values["balance_minor"] = row["snapshot_balance_minor"]
    return DebtorFacts(**values)


PLACEMENT_COLUMNS = (
    "segment",
    "stage",
    "strategy",
    "days_past_due",
    "ruleset_version",
    "segmented_at",
)


def _debtor_with_placement(tenant_id: str, debtor_id: str) -> Select[Any]:
    """The facts row and, once placed, the placement (its columns are None before)."""
    return (
        select(debtors, *(placements.c[name] for name in PLACEMENT_COLUMNS))
        .select_from(
            debtors.outerjoin(
                placements,
                and_(
                    placements.c.tenant_id == debtors.c.tenant_id,
                    placements.c.debtor_id == debtors.c.debtor_id,
                ),
            )
        )
        .where(debtors.c.tenant_id == tenant_id, debtors.c.debtor_id == debtor_id)
    )


def _json_members(**members: object) -> str:
    """`,"name":<JSON value>` for each member: constant parts of an event, escaped by Python."""
    return "".join(
        f",{json.dumps(name)}:{json.dumps(value, ensure_ascii=False)}"
        for name, value in members.items()
    )


def _json_text(value: ColumnElement[Any]) -> ColumnElement[str]:
    """A value as JSON text, escaped by PostgreSQL (NULL stays NULL)."""
    return cast(func.to_json(value), Text)


def _time_ordered_event_ids(now: datetime) -> ColumnElement[Any]:
    """Event ids for the rows of one statement, as UUIDv7: the time in milliseconds, then random
    bits, then the row's number from a random start. Unlike random UUIDs they are appended at
    the end of consumers' processed-events indexes instead of landing on random pages of them."""
    milliseconds = int(now.timestamp() * 1000) & (2**48 - 1)
    prefix = f"{milliseconds:012x}7{secrets.randbits(12):03x}"
    # Variant bits `10`, then 62 bits: a random start leaving room for any number of rows.
    start = -(2**63) + secrets.randbelow(2**62 - 2**40)
    number = func.row_number().over()
    return cast(
        literal(prefix, Text).op("||")(
            func.lpad(func.to_hex(literal(start, BigInteger) + number), 16, "0")
        ),
        PgUUID,
    )


def _concatenated(*parts: ColumnElement[Any]) -> ColumnElement[str]:
    """`a || b || ...`: NULL if any part is NULL, so nullable parts are coalesced by the caller."""
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.op("||")(part)
    return cast(joined, Text)


@dataclass(frozen=True)
class StoredRuleSet:
    tenant_id: str
    version: int
    status: str
    document: dict[str, Any]
    source: str
    description: str | None
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    resegment_cursor: str | None
    resegment_evaluated: int
    resegment_changed: int
    resegment_finished_at: datetime | None

    @property
    def label(self) -> str:
        return version_label(self.version)


def version_label(version: int) -> str:
    return f"v{version}"


@dataclass(frozen=True)
class Chunk:
    """The debtors with `after < debtor_id <= upto`, re-segmented in one transaction."""

    after: str | None
    upto: str
    debtors: int


class SegmenterRepository:
    """The segmenter's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- facts ----------------------------------------------------------------------------

    async def save_snapshot(self, event: DebtImported, facts: dict[str, Any]) -> bool:
        """Store the import's snapshot and facts; False when an older snapshot arrived late."""
        values = {
            "tenant_id": event.tenant_id,
            "debtor_id": event.debtor_id,
            "contact": event.contact.model_dump(mode="json"),
            "snapshot_balance_minor": event.balance.amount_minor,
            "currency": event.balance.currency,
            "snapshot_as_of": event.as_of,
            "oldest_due_on": event.oldest_due_on,
            **facts,
        }
        upsert = insert(debtors).values(values)
        # An older snapshot delivered late never overwrites a newer one.
        saved = await self.session.scalar(
            upsert.on_conflict_do_update(
                index_elements=[debtors.c.tenant_id, debtors.c.debtor_id],
                set_={key: upsert.excluded[key] for key in values},
                where=debtors.c.snapshot_as_of <= upsert.excluded.snapshot_as_of,
            ).returning(debtors.c.debtor_id)
        )
        return saved is not None

    async def watch_time_zone(self, tenant_id: str, time_zone: str, today: date) -> None:
        """Make the aging sweep visit this tenant's debtors in this zone from tomorrow on."""
        await self.session.execute(
            insert(aging_clock)
            .values(tenant_id=tenant_id, time_zone=time_zone, swept_on=today)
            .on_conflict_do_nothing()
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

    async def payment_times(self, tenant_id: str, debtor_id: str) -> list[datetime]:
        result = await self.session.scalars(
            select(payments.c.received_at).where(
                payments.c.tenant_id == tenant_id, payments.c.debtor_id == debtor_id
            )
        )
        return list(result)

    async def record_promise(self, event: PromiseRegistered) -> bool:
        inserted = await self.session.scalar(
            insert(promises)
            .values(
                tenant_id=event.tenant_id,
                promise_id=event.promise_id,
                debtor_id=event.debtor_id,
                amount_minor=event.amount.amount_minor,
                currency=event.amount.currency,
                promised_on=event.promised_on,
                registered_at=event.registered_at,
            )
            .on_conflict_do_nothing()
            .returning(promises.c.promise_id)
        )
        return inserted is not None

    async def record_promise_outcome(
        self, tenant_id: str, promise_id: UUID, outcome: str, at: datetime
    ) -> str | None:
        """Mark a promise kept or broken once; returns its debtor, or None if already decided."""
        debtor_id: str | None = await self.session.scalar(
            update(promises)
            .where(
                promises.c.tenant_id == tenant_id,
                promises.c.promise_id == promise_id,
                promises.c.outcome.is_(None),
            )
            .values(outcome=outcome, outcome_at=at)
            .returning(promises.c.debtor_id)
        )
        return debtor_id

    async def update_facts(self, tenant_id: str, debtor_id: str, **changes: Any) -> None:
        await self.session.execute(
            update(debtors)
            .where(debtors.c.tenant_id == tenant_id, debtors.c.debtor_id == debtor_id)
            .values(**changes)
        )

    async def count_up(self, tenant_id: str, debtor_id: str, counter: str, **changes: Any) -> None:
        await self.update_facts(
            tenant_id, debtor_id, **{counter: debtors.c[counter] + 1}, **changes
        )

    async def debtor_for_update(self, tenant_id: str, debtor_id: str) -> dict[str, Any] | None:
        """The debtor's facts and placement (None before the first); the facts row is locked."""
        row = (
            await self.session.execute(
                _debtor_with_placement(tenant_id, debtor_id).with_for_update(of=debtors)
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def debtor(self, tenant_id: str, debtor_id: str) -> dict[str, Any] | None:
        row = (
            await self.session.execute(_debtor_with_placement(tenant_id, debtor_id))
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

    # -- placements -------------------------------------------------------------------------

    async def save_placement(
        self,
        tenant_id: str,
        debtor_id: str,
        placement: Placement,
        balance_minor: int,
        evaluated_at: datetime,
        previous: tuple[str | None, str | None],
        trigger: str,
        *,
        balance_moved: bool,
    ) -> None:
        if balance_moved:
            await self.session.execute(
                update(debtors)
                .where(debtors.c.tenant_id == tenant_id, debtors.c.debtor_id == debtor_id)
                .values(balance_minor=balance_minor)
            )
        placed = {
            "segment": placement.segment,
            "stage": placement.stage.value,
            "strategy": placement.strategy,
            "days_past_due": placement.days_past_due,
            "ruleset_version": placement.ruleset_version,
            "segmented_at": evaluated_at,
        }
        upsert = insert(placements).values(tenant_id=tenant_id, debtor_id=debtor_id, **placed)
        await self.session.execute(
            upsert.on_conflict_do_update(
                index_elements=[placements.c.tenant_id, placements.c.debtor_id],
                set_={key: upsert.excluded[key] for key in placed},
            )
        )
        await self.session.execute(
            segment_history.insert().values(
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                segment=placement.segment,
                stage=placement.stage.value,
                strategy=placement.strategy,
                previous_segment=previous[0],
                previous_stage=previous[1],
                days_past_due=placement.days_past_due,
                balance_minor=balance_minor,
                ruleset_version=placement.ruleset_version,
                reason=placement.reason,
                evaluated_at=evaluated_at,
                trigger=trigger,
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

    # -- rule sets --------------------------------------------------------------------------

    async def add_ruleset(
        self, tenant_id: str, document: dict[str, Any], source: str, now: datetime
    ) -> int:
        """Store a validated draft as the tenant's next version number."""
        # Two uploads at once must not both take version n+1.
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": zlib.crc32(f"rulesets:{tenant_id}".encode())},
        )
        latest = await self.session.scalar(
            select(func.coalesce(func.max(rulesets.c.version), 0)).where(
                rulesets.c.tenant_id == tenant_id
            )
        )
        version = int(latest or 0) + 1
        await self.session.execute(
            rulesets.insert().values(
                tenant_id=tenant_id,
                version=version,
                status="draft",
                document=document,
                source=source,
                description=document.get("description"),
                created_at=now,
            )
        )
        return version

    async def rulesets_of(self, tenant_id: str) -> list[StoredRuleSet]:
        rows = await self.session.execute(
            select(rulesets)
            .where(rulesets.c.tenant_id == tenant_id)
            .order_by(rulesets.c.version.desc())
        )
        return [StoredRuleSet(**row._mapping) for row in rows]

    async def ruleset(
        self, tenant_id: str, version: int, for_update: bool = False
    ) -> StoredRuleSet | None:
        query = select(rulesets).where(
            rulesets.c.tenant_id == tenant_id, rulesets.c.version == version
        )
        row = (
            await self.session.execute(query.with_for_update() if for_update else query)
        ).one_or_none()
        return None if row is None else StoredRuleSet(**row._mapping)

    async def active_ruleset(self, tenant_id: str) -> StoredRuleSet | None:
        row = (
            await self.session.execute(
                select(rulesets).where(
                    rulesets.c.tenant_id == tenant_id, rulesets.c.status == "active"
                )
            )
        ).one_or_none()
        return None if row is None else StoredRuleSet(**row._mapping)

    async def activate(self, tenant_id: str, version: int, now: datetime) -> None:
        """Make `version` the one active version; the previous one is retired."""
        await self.session.execute(
            update(rulesets)
            .where(rulesets.c.tenant_id == tenant_id, rulesets.c.status == "active")
            .values(status="retired", retired_at=now)
        )
        await self.session.execute(
            update(rulesets)
            .where(rulesets.c.tenant_id == tenant_id, rulesets.c.version == version)
            .values(
                status="active",
                activated_at=now,
                retired_at=None,
                resegment_cursor=None,
                resegment_evaluated=0,
                resegment_changed=0,
                resegment_finished_at=None,
            )
        )

    async def unfinished_activations(self) -> list[tuple[str, int]]:
        rows = await self.session.execute(
            select(rulesets.c.tenant_id, rulesets.c.version).where(
                rulesets.c.status == "active", rulesets.c.resegment_finished_at.is_(None)
            )
        )
        return [(row.tenant_id, row.version) for row in rows]

    async def record_changed(self, tenant_id: str, version: int, changed: int) -> None:
        """Count the debtors a committed chunk re-placed (the row lock is held to commit)."""
        await self.session.execute(
            update(rulesets)
            .where(rulesets.c.tenant_id == tenant_id, rulesets.c.version == version)
            .values(resegment_changed=rulesets.c.resegment_changed + changed)
        )

    async def advance_cursor(
        self, tenant_id: str, version: int, cursor: str, evaluated: int
    ) -> None:
        """Every debtor up to `cursor` is done, `evaluated` of them since activation. Never moves
        back: chunks commit out of order, and two replicas may finish the same activation."""
        await self.session.execute(
            update(rulesets)
            .where(
                rulesets.c.tenant_id == tenant_id,
                rulesets.c.version == version,
                or_(rulesets.c.resegment_cursor.is_(None), rulesets.c.resegment_cursor <= cursor),
            )
            .values(resegment_cursor=cursor, resegment_evaluated=evaluated)
        )

    async def finish_activation(self, tenant_id: str, version: int, now: datetime) -> None:
        await self.session.execute(
            update(rulesets)
            .where(
                rulesets.c.tenant_id == tenant_id,
                rulesets.c.version == version,
                rulesets.c.resegment_finished_at.is_(None),
            )
            .values(resegment_finished_at=now)
        )

    # -- set-based segmentation -------------------------------------------------------------

    async def time_zones(self, tenant_id: str) -> list[str]:
        result = await self.session.scalars(
            select(debtors.c.time_zone).where(debtors.c.tenant_id == tenant_id).distinct()
        )
        return list(result)

    async def chunk_bounds(self, tenant_id: str, after: str | None, size: int) -> list[Chunk]:
        """The tenant's debtors after `after`, cut in chunks of `size` in debtor id order."""
        ids = select(
            debtors.c.debtor_id,
            func.row_number().over(order_by=debtors.c.debtor_id).label("position"),
            func.lead(debtors.c.debtor_id).over(order_by=debtors.c.debtor_id).label("next_id"),
        ).where(debtors.c.tenant_id == tenant_id)
        if after is not None:
            ids = ids.where(debtors.c.debtor_id > after)
        numbered = ids.subquery()
        rows = await self.session.execute(
            select(numbered.c.debtor_id, numbered.c.position)
            .where(or_(numbered.c.position % size == 0, numbered.c.next_id.is_(None)))
            .order_by(numbered.c.position)
        )
        chunks, lower, counted = [], after, 0
        for upto, position in rows:
            chunks.append(Chunk(after=lower, upto=upto, debtors=position - counted))
            lower, counted = upto, position
        return chunks

    async def resegment(
        self,
        tenant_id: str,
        ruleset: RuleSet,
        label: str,
        zones: list[tuple[str, date]],
        now: datetime,
        trigger: str,
        correlation_id: str | None,
        *,
        after: str | None = None,
        upto: str | None = None,
        time_zone: str | None = None,
    ) -> int:
        """Evaluate the rule set for a slice of the tenant's debtors in one statement; write the
        placement, a history row and a `debtor-segmented` outbox row for each debtor whose
        segment, stage or strategy changes. Returns how many changed."""
        # The changed rows are kept for the history and the outbox: in memory, not on disk.
        await prepare_bulk_transaction(self.session, work_mem="128MB")
        d, p = debtors.alias("d"), placements.alias("p")
        zone_dates = values(
            column("time_zone", Text), column("local_date", Date), name="zone_dates"
        ).data(zones)
        rules = RuleSql(d, zone_dates.c.local_date)
        texts = reasons(ruleset)
        # What each target puts in the event is the same for all its debtors: its JSON is
        # written here, once, not by PostgreSQL for every debtor.
        targets = values(
            column("idx", Integer),
            column("segment", Text),
            column("stage", Text),
            column("strategy", Text),
            column("reason", Text),
            column("placed_json", Text),
            name="targets",
        ).data(
            [
                (
                    index,
                    target.name,
                    target.stage.value,
                    target.strategy,
                    texts[index],
                    _json_members(
                        segment=target.name,
                        stage=target.stage.value,
                        strategy=target.strategy,
                        reason=texts[index],
                    ),
                )
                for index, target in enumerate(ruleset.targets())
            ]
        )

        # The slice is bounded on both tables, so they are read side by side in key order
        # (a merge join) instead of looking each placement up in the index.
        def in_slice(table: Any) -> list[ColumnElement[bool]]:
            bounds = [table.c.tenant_id == tenant_id]
            if after is not None:
                bounds.append(table.c.debtor_id > after)
            if upto is not None:
                bounds.append(table.c.debtor_id <= upto)
            return bounds

        where = in_slice(d) + in_slice(p)
        if time_zone is not None:
            where.append(d.c.time_zone == time_zone)
        # Every debtor has a placement: it is made in the transaction that first stores its
        # facts (`save_snapshot` is always followed by `resegment` one debtor at a time).
        evaluated = (
            select(
                d.c.tenant_id,
                d.c.debtor_id,
                d.c.contact,
                func.coalesce(d.c.balance_minor, d.c.snapshot_balance_minor).label("balance"),
                d.c.snapshot_balance_minor,
                d.c.currency,
                d.c.snapshot_as_of,
                d.c.oldest_due_on,
                p.c.segment.label("previous_segment"),
                p.c.stage.label("previous_stage"),
                p.c.strategy.label("previous_strategy"),
                rules.segment_index(ruleset).label("idx"),
                rules.days_past_due.label("dpd"),
            )
            .select_from(
                d.join(zone_dates, zone_dates.c.time_zone == d.c.time_zone).join(
                    p, and_(p.c.tenant_id == d.c.tenant_id, p.c.debtor_id == d.c.debtor_id)
                )
            )
            .where(*where)
            .cte("evaluated")
        )
        placed = (
            select(
                evaluated,
                targets.c.segment,
                targets.c.stage,
                targets.c.strategy,
                targets.c.reason,
                targets.c.placed_json,
            )
            .join_from(evaluated, targets, targets.c.idx == evaluated.c.idx)
            .where(
                or_(
                    evaluated.c.previous_segment.is_distinct_from(targets.c.segment),
                    evaluated.c.previous_stage.is_distinct_from(targets.c.stage),
                    evaluated.c.previous_strategy.is_distinct_from(targets.c.strategy),
                )
            )
            .cte("placed")
        )
        at = literal(now, DateTime(timezone=True))
        changed = (
            update(placements)
            .where(
                # The slice's bounds again: without them PostgreSQL reads every placement of the
                # portfolio to find the slice's (a million rows for each 50,000-debtor chunk).
                *in_slice(placements),
                placements.c.tenant_id == placed.c.tenant_id,
                placements.c.debtor_id == placed.c.debtor_id,
                # Only if still where it was evaluated from: a debtor an event (or another
                # replica running the same chunk) re-placed meanwhile is left as they put it,
                # and never gets a second history row or event.
                placements.c.segment == placed.c.previous_segment,
                placements.c.stage == placed.c.previous_stage,
                placements.c.strategy.is_not_distinct_from(placed.c.previous_strategy),
            )
            .values(
                segment=placed.c.segment,
                stage=placed.c.stage,
                strategy=placed.c.strategy,
                days_past_due=placed.c.dpd,
                ruleset_version=label,
                segmented_at=at,
            )
            .returning(*(col for col in placed.c if col.name != "idx"))
            .cte("changed")
        )
        c = changed.c
        history = (
            insert(segment_history)
            .from_select(
                [
                    "tenant_id",
                    "debtor_id",
                    "segment",
                    "stage",
                    "strategy",
                    "previous_segment",
                    "previous_stage",
                    "days_past_due",
                    "balance_minor",
                    "ruleset_version",
                    "reason",
                    "evaluated_at",
                    "trigger",
                ],
                select(
                    c.tenant_id,
                    c.debtor_id,
                    c.segment,
                    c.stage,
                    c.strategy,
                    c.previous_segment,
                    c.previous_stage,
                    c.dpd,
                    c.balance,
                    literal(label, Text),
                    c.reason,
                    at,
                    literal(trigger, Text),
                ),
            )
            .cte("history")
        )
        # `DebtorSegmented` as JSON text, concatenated: nested json_build_object calls cost
        # several times more at a million debtors. Free text goes through to_json; currencies
        # (validated ISO codes), numbers and ISO dates (see prepare_bulk_transaction) need no escaping.
        payload = _concatenated(
            literal('{"tenant_id":' + json.dumps(tenant_id) + ',"debtor_id":', Text),
            _json_text(c.debtor_id),
            c.placed_json,
            literal(',"previous_segment":', Text),
            func.coalesce(_json_text(c.previous_segment), literal("null", Text)),
            literal(',"previous_stage":', Text),
            func.coalesce(_json_text(c.previous_stage), literal("null", Text)),
            literal(',"days_past_due":', Text),
            c.dpd,
            literal(',"balance":{"amount_minor":', Text),
            c.balance,
            literal(',"currency":"', Text),
            c.currency,
            literal('"},"snapshot_balance":{"amount_minor":', Text),
            c.snapshot_balance_minor,
            literal(',"currency":"', Text),
            c.currency,
            literal('"},"snapshot_as_of":', Text),
            _json_text(c.snapshot_as_of),
            literal(',"oldest_due_on":"', Text),
            c.oldest_due_on,
            literal('","contact":', Text),
            cast(c.contact, Text),
            literal(
                _json_members(ruleset_version=label, evaluated_at=now.astimezone(UTC).isoformat())
                + "}",
                Text,
            ),
        )
        events = select(
            _time_ordered_event_ids(now).label("event_id"),
            c.debtor_id,
            payload.label("payload"),
        ).subquery("events")
        statement = insert_event_batches(
            schema.outbox,
            events,
            tenant_id=literal(tenant_id, Text),
            topic=Topic.DEBTOR_SEGMENTED.value,
            event_type=event_type_of(DebtorSegmented),
            source=literal("recupero/segmenter", Text),
            correlation_id=literal(correlation_id, Text),
        ).add_cte(history)
        batches = await self.session.scalars(statement.returning(schema.outbox.c.batch_events))
        return sum(batches)

    async def preview(
        self, tenant_id: str, ruleset: RuleSet, zones: list[tuple[str, date]]
    ) -> list[tuple[str | None, int, str, int, int]]:
        """(current segment, proposed index, currency, debtors, balance) for the whole portfolio."""
        d, p = debtors.alias("d"), placements.alias("p")
        zone_dates = values(
            column("time_zone", Text), column("local_date", Date), name="zone_dates"
        ).data(zones)
        rules = RuleSql(d, zone_dates.c.local_date)
        proposed = (
            select(
                p.c.segment,
                d.c.currency,
                func.coalesce(d.c.balance_minor, d.c.snapshot_balance_minor).label("balance"),
                rules.segment_index(ruleset).label("idx"),
            )
            .select_from(
                d.join(zone_dates, zone_dates.c.time_zone == d.c.time_zone).outerjoin(
                    p, and_(p.c.tenant_id == d.c.tenant_id, p.c.debtor_id == d.c.debtor_id)
                )
            )
            .where(d.c.tenant_id == tenant_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(
                proposed.c.segment,
                proposed.c.idx,
                proposed.c.currency,
                func.count(),
                func.cast(func.sum(proposed.c.balance), BigInteger),
            ).group_by(proposed.c.segment, proposed.c.idx, proposed.c.currency)
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def evaluate_with_sql(
        self, tenant_id: str, ruleset: RuleSet, zones: list[tuple[str, date]]
    ) -> dict[str, tuple[int, int]]:
        """Each debtor's segment index and propensity score by the compiled SQL, without
        writing: what the property test compares with the Python evaluator."""
        d = debtors.alias("d")
        zone_dates = values(
            column("time_zone", Text), column("local_date", Date), name="zone_dates"
        ).data(zones)
        rules = RuleSql(d, zone_dates.c.local_date)
        rows = await self.session.execute(
            select(d.c.debtor_id, rules.segment_index(ruleset), rules.propensity_score())
            .select_from(d.join(zone_dates, zone_dates.c.time_zone == d.c.time_zone))
            .where(d.c.tenant_id == tenant_id)
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    # -- aging ------------------------------------------------------------------------------

    async def aging_clocks(self) -> list[tuple[str, str, date]]:
        rows = await self.session.execute(select(aging_clock))
        return [(row.tenant_id, row.time_zone, row.swept_on) for row in rows]

    async def claim_aging(self, tenant_id: str, time_zone: str, today: date) -> bool:
        """Take this zone's sweep for `today` unless another replica holds it or did it."""
        claimed = await self.session.scalar(
            select(aging_clock.c.tenant_id)
            .where(
                aging_clock.c.tenant_id == tenant_id,
                aging_clock.c.time_zone == time_zone,
                aging_clock.c.swept_on < today,
            )
            .with_for_update(skip_locked=True)
        )
        return claimed is not None

    async def mark_swept(self, tenant_id: str, time_zone: str, today: date) -> None:
        await self.session.execute(
            update(aging_clock)
            .where(aging_clock.c.tenant_id == tenant_id, aging_clock.c.time_zone == time_zone)
            .values(swept_on=today)
        )


__all__ = [
    "FACT_COLUMNS",
    "PLACEMENT_COLUMNS",
    "Chunk",
    "SegmenterRepository",
    "StoredRuleSet",
]

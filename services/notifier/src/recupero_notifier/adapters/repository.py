"""All of notifier's queries. Delivery statements are scoped by tenant, except the lookups that
start from a provider callback: the provider knows our action id or the debtor's number, not
the tenant, and the row found says whose it is.

The statements of the delivery path (every `action-due` and every status webhook runs them) are
fixed SQL text sent on the session's own asyncpg connection, inside its transaction: building
SQLAlchemy Core statements per call (coercions, cache keys, result rows) cost ~15% of the
notifier's CPU; asyncpg prepares each text once per connection.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_events import ActionDue, DebtImported, PaymentReceived
from recupero_notifier.adapters.letters import LetterQueries
from recupero_notifier.adapters.tables import (
    conversations,
    debtor_facts,
    debtor_payments,
    deliveries,
    inbound_contacts,
    received_callbacks,
    template_versions,
)
from recupero_notifier.adapters.template_store import TemplateQueries
from recupero_notifier.adapters.templates import TemplateSource
from recupero_notifier.domain.chatbot import ChatState, DebtorFacts, DocumentFact
from recupero_runtime.db import asyncpg_connection


@dataclass(frozen=True, slots=True)
class DeliveryState:
    status: str
    last_attempt_at: datetime | None
    # Set while the delivery is parked: the retry worker owns it until it settles.
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryOutlook:
    """What deciding on an action needs, read in one round trip."""

    # None: never attempted.
    state: DeliveryState | None
    # The tenant's own template for the action (None: the shipped one applies).
    template: TemplateSource | None
    # When the recipient last wrote to us on the channel (None: never, or not asked).
    last_inbound_at: datetime | None


@dataclass(frozen=True, slots=True)
class KnownDebtor:
    """The debtor an inbound number belongs to, with what the bot may tell them."""

    tenant_id: str
    debtor_id: str
    facts: DebtorFacts


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery as a callback sees it."""

    action_id: UUID
    tenant_id: str
    debtor_id: str
    channel: str
    template: str
    status: str
    message_id: str | None
    provider: str | None


_DELIVERY_COLUMNS = (
    deliveries.c.action_id,
    deliveries.c.tenant_id,
    deliveries.c.debtor_id,
    deliveries.c.channel,
    deliveries.c.template,
    deliveries.c.status,
    deliveries.c.message_id,
    deliveries.c.provider,
)


def _delivery(row: Any) -> Delivery:
    return Delivery(**row._mapping)


_DELIVERIES = deliveries.fullname

# One row per action of a batch, in the batch's order: $1 tenants, $2 action ids, $3 channels and
# $4 addresses of the session window (NULL: not asked), $5 template names, $6 the tenant's template
# keys in order of preference (locale, language), comma-separated.
_OUTLOOKS = f"""
SELECT d.status, d.last_attempt_at, d.retry_at,
       (SELECT last_inbound_at FROM {inbound_contacts.fullname}
         WHERE channel = a.channel AND address = a.address) AS last_inbound_at,
       t.locale, t.version, t.parts
  FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
       WITH ORDINALITY AS a(tenant_id, action_id, channel, address, template, keys, position)
  LEFT JOIN {_DELIVERIES} AS d ON d.tenant_id = a.tenant_id AND d.action_id = a.action_id
  LEFT JOIN LATERAL (
        SELECT locale, version, parts FROM {template_versions.fullname}
         WHERE tenant_id = a.tenant_id AND name = a.template
           AND locale = ANY(string_to_array(a.keys, ','))
         ORDER BY array_position(string_to_array(a.keys, ','), locale), version DESC
         LIMIT 1) AS t ON true
 ORDER BY a.position
"""

# The batch's attempts, one row per action (distinct action ids): $1 action ids, $2 tenants,
# $3 debtors, $4 channels, $5 templates, $6 providers, $7 recipients.
_RECORD_ATTEMPTS = f"""
INSERT INTO {_DELIVERIES} AS d
       (action_id, tenant_id, debtor_id, channel, template, status, provider, recipient,
        attempts, first_attempt_at, last_attempt_at)
SELECT a.action_id, a.tenant_id, a.debtor_id, a.channel, a.template, 'sending', a.provider,
       a.recipient, 1, now(), now()
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
       AS a(action_id, tenant_id, debtor_id, channel, template, provider, recipient)
ON CONFLICT (action_id) DO UPDATE
   SET status = 'sending', provider = excluded.provider, recipient = excluded.recipient,
       attempts = d.attempts + 1, first_attempt_at = coalesce(d.first_attempt_at, now()),
       last_attempt_at = now()
 WHERE d.status NOT IN ('sent', 'failed') AND d.tenant_id = excluded.tenant_id
RETURNING d.action_id, d.attempts
"""

# $1 tenants, $2 action ids, $3 provider message ids, $4 when each was sent. The rows are locked
# in action id order first, the order status webhooks settle theirs in: a batch and a webhook
# waiting on each other's rows in opposite orders deadlocked (one of them was aborted).
_MARK_SENT = f"""
WITH s AS (
  SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[])
         AS s(tenant_id, action_id, message_id, sent_at)),
locked AS (
  SELECT d.action_id FROM {_DELIVERIES} AS d JOIN s USING (tenant_id, action_id)
   WHERE d.status <> 'sent' ORDER BY d.action_id FOR UPDATE OF d)
UPDATE {_DELIVERIES} AS d
   SET status = 'sent', message_id = s.message_id, sent_at = s.sent_at, failure = NULL,
       parked_action = NULL, retry_at = NULL
  FROM s
 WHERE d.action_id IN (SELECT action_id FROM locked)
   AND d.tenant_id = s.tenant_id AND d.action_id = s.action_id AND d.status <> 'sent'
RETURNING d.action_id
"""

# $1 provider, $2 callback keys, $3 their action ids (a notification's statuses, in order): each
# claimed (false for a replay) and its delivery.
_CLAIM_STATUS_CALLBACKS = f"""
WITH claimed AS (
  INSERT INTO {received_callbacks.fullname} (provider, callback_key)
  SELECT $1, key FROM unnest($2::text[]) AS key
  ON CONFLICT DO NOTHING RETURNING callback_key)
SELECT c.key IN (SELECT callback_key FROM claimed) AS claimed,
       {", ".join(f"d.{column.name}" for column in _DELIVERY_COLUMNS)}
  FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS c(key, action_id, position)
  LEFT JOIN {_DELIVERIES} AS d ON d.action_id = c.action_id
 ORDER BY c.position
"""


class NotifierRepository(TemplateQueries, LetterQueries):
    """Notifier's queries over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def delivery_outlooks(
        self, asked: Sequence[tuple[ActionDue, tuple[str, ...], str | None]]
    ) -> list[DeliveryOutlook]:
        """For each (action, template keys, session address), in order and in one round trip:
        the action's delivery state, the tenant's template for it (the first of the keys the
        tenant has, its highest version) and, when the address is given, when it last wrote to
        us on the action's channel."""
        raw = await asyncpg_connection(self.session)
        rows = await raw.fetch(
            _OUTLOOKS,
            [action.tenant_id for action, _, _ in asked],
            [action.action_id for action, _, _ in asked],
            [None if address is None else action.channel.value for action, _, address in asked],
            [address for _, _, address in asked],
            [action.template for action, _, _ in asked],
            [",".join(keys) for _, keys, _ in asked],
        )
        return [
            DeliveryOutlook(
                None
                if row["status"] is None
                else DeliveryState(row["status"], row["last_attempt_at"], row["retry_at"]),
                None
                if row["locale"] is None
                else TemplateSource(action.template, row["locale"], row["parts"], row["version"]),
                row["last_inbound_at"],
            )
            for (action, _, _), row in zip(asked, rows, strict=True)
        ]

    async def record_attempts(
        self, attempts: Sequence[tuple[ActionDue, str, str]]
    ) -> dict[UUID, int]:
        """Mark each (action, recipient, provider) `sending` and count the attempt, in one
        statement; returns the attempt number by action id (distinct ids only).

        An action missing from the result is already `sent` or `failed` (or its id belongs to
        another tenant): the caller must not contact the debtor.
        """
        raw = await asyncpg_connection(self.session)
        # In action id order, as every statement that locks several deliveries.
        attempts = sorted(attempts, key=lambda attempt: attempt[0].action_id)
        rows = await raw.fetch(
            _RECORD_ATTEMPTS,
            [action.action_id for action, _, _ in attempts],
            [action.tenant_id for action, _, _ in attempts],
            [action.debtor_id for action, _, _ in attempts],
            [action.channel.value for action, _, _ in attempts],
            [action.template for action, _, _ in attempts],
            [provider for _, _, provider in attempts],
            [recipient for _, recipient, _ in attempts],
        )
        return {row["action_id"]: row["attempts"] for row in rows}

    async def mark_all_sent(self, sent: Sequence[tuple[str, UUID, str, datetime]]) -> set[UUID]:
        """(tenant, action id, provider message id, sent at) each, in one statement; returns the
        action ids marked now (not those already `sent`)."""
        raw = await asyncpg_connection(self.session)
        rows = await raw.fetch(
            _MARK_SENT,
            [tenant_id for tenant_id, _, _, _ in sent],
            [action_id for _, action_id, _, _ in sent],
            [message_id for _, _, message_id, _ in sent],
            [sent_at for _, _, _, sent_at in sent],
        )
        return {row["action_id"] for row in rows}

    async def mark_not_accepted(
        self, tenant_id: str, action_id: UUID, status: str, reason: str
    ) -> None:
        """`retrying` (try again later) or `failed` (never): the provider did not take it."""
        await self.session.execute(
            update(deliveries)
            .where(
                deliveries.c.tenant_id == tenant_id,
                deliveries.c.action_id == action_id,
                deliveries.c.status == "sending",
            )
            .values(status=status, failure=reason[:1000], parked_action=None, retry_at=None)
        )

    async def park(self, action: ActionDue, status: str, reason: str, retry_at: datetime) -> None:
        """Keep the action for the retry worker: `retrying` (the provider did not take it) or
        still `sending` (the outcome is unknown; its callback may settle it first)."""
        await self.session.execute(
            update(deliveries)
            .where(
                deliveries.c.tenant_id == action.tenant_id,
                deliveries.c.action_id == action.action_id,
                deliveries.c.status == "sending",
            )
            .values(
                status=status,
                failure=reason[:1000],
                parked_action=action.model_dump(mode="json"),
                retry_at=retry_at,
            )
        )

    async def claim_parked(self, limit: int, lease_until: datetime) -> list[ActionDue]:
        """Parked deliveries due now, oldest first, leased until `lease_until`: another replica
        skips them, and a worker that dies holding them gives them back when the lease ends."""
        due = (
            select(deliveries.c.action_id)
            .where(
                deliveries.c.retry_at <= func.now(),
                deliveries.c.status.in_(("retrying", "sending")),
            )
            .order_by(deliveries.c.retry_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = await self.session.scalars(
            update(deliveries)
            .where(deliveries.c.action_id.in_(due.scalar_subquery()))
            .values(retry_at=lease_until)
            .returning(deliveries.c.parked_action)
        )
        return [ActionDue.model_validate(payload) for payload in rows if payload is not None]

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

    # --- provider callbacks --------------------------------------------------------------------

    async def claim_callback(self, provider: str, callback_key: str) -> bool:
        """True the first time this callback is seen; False for a replay."""
        claimed = await self.session.scalar(
            insert(received_callbacks)
            .values(provider=provider, callback_key=callback_key)
            .on_conflict_do_nothing()
            .returning(received_callbacks.c.callback_key)
        )
        return claimed is not None

    async def claim_status_callbacks(
        self, provider: str, callbacks: Sequence[tuple[str, UUID]]
    ) -> list[tuple[bool, Delivery | None]]:
        """`claim_callback` and `delivery_for_callback` for each (callback key, action id) of
        a notification, in order and in one round trip (distinct keys)."""
        raw = await asyncpg_connection(self.session)
        rows = await raw.fetch(
            _CLAIM_STATUS_CALLBACKS,
            provider,
            [key for key, _ in callbacks],
            [action_id for _, action_id in callbacks],
        )
        return [
            (
                bool(row["claimed"]),
                None
                if row["action_id"] is None
                else Delivery(**{column.name: row[column.name] for column in _DELIVERY_COLUMNS}),
            )
            for row in rows
        ]

    async def delivery_for_callback(self, action_id: UUID) -> Delivery | None:
        row = (
            await self.session.execute(
                select(*_DELIVERY_COLUMNS).where(deliveries.c.action_id == action_id)
            )
        ).one_or_none()
        return None if row is None else _delivery(row)

    async def deliveries_to(self, channel: str, address: str) -> list[Delivery]:
        """The latest delivery to this address per tenant and debtor, newest first."""
        latest = (
            select(*_DELIVERY_COLUMNS, deliveries.c.first_attempt_at)
            .where(
                deliveries.c.channel == channel,
                deliveries.c.recipient == address,
                deliveries.c.status == "sent",
            )
            .ext(distinct_on(deliveries.c.tenant_id, deliveries.c.debtor_id))
            .order_by(
                deliveries.c.tenant_id,
                deliveries.c.debtor_id,
                deliveries.c.first_attempt_at.desc(),
            )
            .subquery()
        )
        rows = await self.session.execute(
            select(*(latest.c[column.name] for column in _DELIVERY_COLUMNS)).order_by(
                latest.c.first_attempt_at.desc()
            )
        )
        return [_delivery(row) for row in rows]

    async def note_inbound(self, channel: str, address: str, at: datetime) -> None:
        statement = insert(inbound_contacts).values(
            channel=channel, address=address, last_inbound_at=at
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[inbound_contacts.c.channel, inbound_contacts.c.address],
                set_={
                    "last_inbound_at": func.greatest(
                        inbound_contacts.c.last_inbound_at, statement.excluded.last_inbound_at
                    )
                },
            )
        )

    # --- the WhatsApp bot ------------------------------------------------------------------------

    async def record_debt(self, debt: DebtImported, at: datetime) -> None:
        """Keep the latest snapshot of the debtor's debt; an older one arriving late is ignored."""
        statement = insert(debtor_facts).values(
            tenant_id=debt.tenant_id,
            debtor_id=debt.debtor_id,
            name=debt.contact.name,
            phone=debt.contact.phone,
            time_zone=debt.contact.time_zone,
            currency=debt.balance.currency,
            snapshot_balance_minor=debt.balance.amount_minor,
            as_of=debt.as_of,
            documents=[
                {
                    "document_id": document.document_id,
                    "due_on": document.due_on.isoformat(),
                    "amount_minor": document.amount.amount_minor,
                }
                for document in debt.documents
            ],
            updated_at=at,
        )
        excluded = statement.excluded
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[debtor_facts.c.tenant_id, debtor_facts.c.debtor_id],
                set_={
                    column: excluded[column]
                    for column in (
                        "name",
                        "phone",
                        "time_zone",
                        "currency",
                        "snapshot_balance_minor",
                        "as_of",
                        "documents",
                        "updated_at",
                    )
                },
                where=debtor_facts.c.as_of <= excluded.as_of,
            )
        )

    async def record_payment(self, payment: PaymentReceived) -> None:
        await self.session.execute(
            insert(debtor_payments)
            .values(
                tenant_id=payment.tenant_id,
                debtor_id=payment.debtor_id,
                payment_id=payment.payment_id,
                amount_minor=payment.amount.amount_minor,
                currency=payment.amount.currency,
                received_at=payment.received_at,
            )
            .on_conflict_do_nothing()
        )

    async def debtors_at(self, phone: str, max_promise_days: int) -> list[KnownDebtor]:
        """Every debtor known at this number, most recently imported first; balances net of the
        payments received after each snapshot."""
        return await self._known_debtors(debtor_facts.c.phone == phone, max_promise_days)

    async def debtor(
        self, tenant_id: str, debtor_id: str, max_promise_days: int
    ) -> KnownDebtor | None:
        """One debtor's facts as the bot would see them; None when no debt was imported."""
        found = await self._known_debtors(
            (debtor_facts.c.tenant_id == tenant_id) & (debtor_facts.c.debtor_id == debtor_id),
            max_promise_days,
        )
        return found[0] if found else None

    async def _known_debtors(
        self, where: ColumnElement[bool], max_promise_days: int
    ) -> list[KnownDebtor]:
        paid = (
            select(func.coalesce(func.sum(debtor_payments.c.amount_minor), 0))
            .where(
                debtor_payments.c.tenant_id == debtor_facts.c.tenant_id,
                debtor_payments.c.debtor_id == debtor_facts.c.debtor_id,
                debtor_payments.c.currency == debtor_facts.c.currency,
                debtor_payments.c.received_at > debtor_facts.c.as_of,
            )
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(debtor_facts, paid.label("paid_minor"))
            .where(where)
            .order_by(debtor_facts.c.updated_at.desc())
        )
        return [
            KnownDebtor(
                tenant_id=row.tenant_id,
                debtor_id=row.debtor_id,
                facts=DebtorFacts(
                    name=row.name,
                    balance_minor=max(row.snapshot_balance_minor - int(row.paid_minor), 0),
                    currency=row.currency,
                    time_zone=row.time_zone,
                    documents=tuple(
                        DocumentFact(
                            document_id=document["document_id"],
                            due_on=date.fromisoformat(document["due_on"]),
                            amount_minor=document["amount_minor"],
                        )
                        for document in row.documents
                    ),
                    max_promise_days=max_promise_days,
                ),
            )
            for row in rows
        ]

    async def conversation_for_update(
        self, tenant_id: str, debtor_id: str, channel: str
    ) -> ChatState | None:
        """The conversation's state, locked: two messages of one debtor are answered in turn."""
        state = await self.session.scalar(
            select(conversations.c.state)
            .where(
                conversations.c.tenant_id == tenant_id,
                conversations.c.debtor_id == debtor_id,
                conversations.c.channel == channel,
            )
            .with_for_update()
        )
        return None if state is None else ChatState.from_json(state)

    async def save_conversation(
        self, tenant_id: str, debtor_id: str, channel: str, state: ChatState, at: datetime
    ) -> None:
        statement = insert(conversations).values(
            tenant_id=tenant_id,
            debtor_id=debtor_id,
            channel=channel,
            state=state.to_json(),
            updated_at=at,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    conversations.c.tenant_id,
                    conversations.c.debtor_id,
                    conversations.c.channel,
                ],
                set_={
                    "state": statement.excluded.state,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )

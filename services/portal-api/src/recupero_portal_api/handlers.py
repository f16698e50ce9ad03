"""Portal-api's event handlers: one per topic, each a plain async function over a unit of work.

Every event becomes a timeline row; some also update the debtor or payment read models. The
consumer runner records the event id in the inbox in the same transaction, so a redelivery never
reaches these functions. They need the envelope as well as the payload: the timeline shows when
the event happened (ce_time) and keeps its id.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar
from uuid import uuid4
from zoneinfo import ZoneInfo

from recupero_events import (
    ActionDue,
    DebtImported,
    DebtorSegmented,
    DecodedEvent,
    EventPayload,
    MessageSent,
    Money,
    PaymentReceived,
    PromiseRegistered,
)
from recupero_portal_api.adapters.repository import PortalRepository
from recupero_portal_api.domain.promises import check_promise
from recupero_portal_api.domain.timeline import describe
from recupero_runtime.db import Work

P = TypeVar("P", bound=EventPayload)


def _payload(event: DecodedEvent, expected: type[P]) -> P:
    payload = event.payload
    if not isinstance(payload, expected):
        raise TypeError(f"expected {expected.__name__}, got {type(payload).__name__}")
    return payload


async def _add_to_timeline(event: DecodedEvent, uow: Work[PortalRepository]) -> None:
    payload = event.payload
    await uow.repo.append_to_timeline(
        tenant_id=payload.tenant_id,
        debtor_id=payload.debtor_id,
        event_id=event.event_id,
        topic=payload.topic.value,
        event_type=event.event_type,
        occurred_at=event.time,
        summary=describe(payload),
        details=payload.model_dump(mode="json"),
    )


async def record_debt_imported(event: DecodedEvent, uow: Work[PortalRepository]) -> None:
    payload = _payload(event, DebtImported)
    await uow.repo.save_debt_snapshot(
        tenant_id=payload.tenant_id,
        debtor_id=payload.debtor_id,
        contact=payload.contact.model_dump(mode="json"),
        documents=[document.model_dump(mode="json") for document in payload.documents],
        balance_minor=payload.balance.amount_minor,
        currency=payload.balance.currency,
        as_of=payload.as_of,
    )
    await _add_to_timeline(event, uow)


async def record_debtor_segmented(event: DecodedEvent, uow: Work[PortalRepository]) -> None:
    payload = _payload(event, DebtorSegmented)
    await uow.repo.save_segmentation(
        tenant_id=payload.tenant_id,
        debtor_id=payload.debtor_id,
        contact=payload.contact.model_dump(mode="json"),
        snapshot_balance_minor=payload.snapshot_balance.amount_minor,
        currency=payload.snapshot_balance.currency,
        snapshot_as_of=payload.snapshot_as_of,
        segment=payload.segment,
        stage=payload.stage.value,
        days_past_due=payload.days_past_due,
        evaluated_at=payload.evaluated_at,
    )
    await _add_to_timeline(event, uow)


async def record_action_due(event: DecodedEvent, uow: Work[PortalRepository]) -> None:
    _payload(event, ActionDue)
    await _add_to_timeline(event, uow)


async def record_message_sent(event: DecodedEvent, uow: Work[PortalRepository]) -> None:
    _payload(event, MessageSent)
    await _add_to_timeline(event, uow)


async def record_promise_registered(event: DecodedEvent, uow: Work[PortalRepository]) -> None:
    _payload(event, PromiseRegistered)
    await _add_to_timeline(event, uow)


async def record_payment_received(event: DecodedEvent, uow: Work[PortalRepository]) -> None:
    payload = _payload(event, PaymentReceived)
    await uow.repo.add_payment(
        tenant_id=payload.tenant_id,
        debtor_id=payload.debtor_id,
        payment_id=payload.payment_id,
        amount_minor=payload.amount.amount_minor,
        currency=payload.amount.currency,
        received_at=payload.received_at,
    )
    await _add_to_timeline(event, uow)


@dataclass(frozen=True)
class RegisterPromise:
    tenant_id: str
    debtor_id: str
    amount: Money
    promised_on: date
    source: str
    registered_at: datetime


class UnknownDebtor(LookupError):
    pass


async def register_promise(
    command: RegisterPromise, uow: Work[PortalRepository], max_days_ahead: int
) -> PromiseRegistered:
    """Validate a debtor's promise to pay and publish `promise-registered`."""
    debtor = await uow.repo.get_debtor(command.tenant_id, command.debtor_id)
    if debtor is None:
        raise UnknownDebtor(command.debtor_id)
    debtor_today = command.registered_at.astimezone(ZoneInfo(debtor.contact["time_zone"])).date()
    check_promise(
        amount_minor=command.amount.amount_minor,
        currency=command.amount.currency,
        debt_currency=debtor.currency,
        promised_on=command.promised_on,
        debtor_today=debtor_today,
        max_days_ahead=max_days_ahead,
    )
    promise = PromiseRegistered(
        tenant_id=command.tenant_id,
        debtor_id=command.debtor_id,
        promise_id=uuid4(),
        amount=command.amount,
        promised_on=command.promised_on,
        source=command.source,
        registered_at=command.registered_at,
    )
    uow.publish(promise)
    return promise

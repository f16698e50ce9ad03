"""Segmenter use cases: place a debtor whenever its debt or payments change."""

from collections.abc import Callable
from datetime import datetime

from recupero_events import (
    CollectionStage,
    ContactDetails,
    DebtImported,
    DebtorSegmented,
    DecodedEvent,
    Money,
    PaymentReceived,
)
from recupero_runtime.consumer import Handler
from recupero_runtime.db import Work
from recupero_segmenter.adapters.repository import SegmenterRepository
from recupero_segmenter.domain.aging import outstanding, place

Clock = Callable[[], datetime]


async def resegment(
    uow: Work[SegmenterRepository], tenant_id: str, debtor_id: str, now: datetime
) -> None:
    """Place the debtor; publish `debtor-segmented` when segment, stage or balance moved."""
    debtor = await uow.repo.debtor_for_update(tenant_id, debtor_id)
    if debtor is None:
        return  # a payment for a debtor we have not seen imported yet: placed on import
    currency = debtor["currency"]
    balance = outstanding(
        debtor["snapshot_balance_minor"],
        debtor["snapshot_as_of"],
        await uow.repo.payments_of(tenant_id, debtor_id, currency),
    )
    placement = place(balance, debtor["oldest_due_on"], now, debtor["contact"]["time_zone"])
    unchanged = (
        debtor["segment"] == placement.segment
        and debtor["stage"] == placement.stage.value
        and debtor["balance_minor"] == balance
        and debtor["ruleset_version"] == placement.ruleset_version
    )
    if unchanged:
        return
    await uow.repo.save_placement(tenant_id, debtor_id, placement, balance, now)
    uow.publish(
        DebtorSegmented(
            tenant_id=tenant_id,
            debtor_id=debtor_id,
            segment=placement.segment,
            stage=placement.stage,
            previous_segment=debtor["segment"],
            previous_stage=CollectionStage(debtor["stage"]) if debtor["stage"] else None,
            days_past_due=placement.days_past_due,
            balance=Money(amount_minor=balance, currency=currency),
            snapshot_balance=Money(
                amount_minor=debtor["snapshot_balance_minor"], currency=currency
            ),
            snapshot_as_of=debtor["snapshot_as_of"],
            oldest_due_on=debtor["oldest_due_on"],
            contact=ContactDetails.model_validate(debtor["contact"]),
            ruleset_version=placement.ruleset_version,
            reason=placement.reason,
            evaluated_at=now,
        )
    )


def debt_imported_handler(clock: Clock) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[SegmenterRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, DebtImported)
        await uow.repo.save_snapshot(payload)
        await resegment(uow, payload.tenant_id, payload.debtor_id, clock())

    return handle


def payment_received_handler(clock: Clock) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[SegmenterRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, PaymentReceived)
        if await uow.repo.record_payment(payload):
            await resegment(uow, payload.tenant_id, payload.debtor_id, clock())

    return handle

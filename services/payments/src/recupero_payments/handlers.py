"""Payments use cases."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from recupero_events import Money, PaymentReceived
from recupero_payments.adapters.repository import PaymentsRepository
from recupero_runtime.db import Work


class ConflictingPayment(ValueError):
    """The external reference is already used by a different payment."""


@dataclass(frozen=True)
class RecordPayment:
    tenant_id: str
    debtor_id: str
    amount: Money
    method: str
    received_at: datetime
    external_reference: str | None = None


async def record_payment(
    command: RecordPayment, uow: Work[PaymentsRepository]
) -> tuple[dict[str, Any], bool]:
    """Store the payment and publish `payment-received`. Returns the payment and whether it is
    new: a retry with the same external reference returns the original and publishes nothing."""
    if command.external_reference is not None:
        existing = await uow.repo.by_reference(command.tenant_id, command.external_reference)
        if existing is not None:
            same = (
                existing["debtor_id"] == command.debtor_id
                and existing["amount_minor"] == command.amount.amount_minor
                and existing["currency"] == command.amount.currency
            )
            if not same:
                raise ConflictingPayment(
                    f"external_reference {command.external_reference!r} already records "
                    f"{existing['amount_minor']} {existing['currency']} for debtor "
                    f"{existing['debtor_id']!r}"
                )
            return existing, False
    payment = PaymentReceived(
        tenant_id=command.tenant_id,
        debtor_id=command.debtor_id,
        payment_id=uuid4(),
        external_reference=command.external_reference,
        amount=command.amount,
        method=command.method,
        received_at=command.received_at,
    )
    if not await uow.repo.insert_payment(payment):
        # Lost a race with a concurrent request carrying the same reference.
        raise ConflictingPayment(f"external_reference {command.external_reference!r} is in use")
    uow.publish(payment)
    stored = await uow.repo.by_id(command.tenant_id, payment.payment_id)
    assert stored is not None
    return stored, True

"""Kafka entrypoint: the runtime's consumer decodes and deduplicates; this only translates the
decoded event into the handler's call."""

from recupero_events import ActionDue, DebtImported, DecodedEvent, PaymentReceived
from recupero_notifier import handlers
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_runtime.consumer import Handler
from recupero_runtime.db import UnitOfWork


def action_due_handler(delivery: handlers.ActionDelivery) -> Handler:
    async def on_action_due(event: DecodedEvent, uow: UnitOfWork[NotifierRepository]) -> None:
        action = event.payload
        if not isinstance(action, ActionDue):
            raise TypeError(f"expected ActionDue, got {type(action).__name__}")
        await delivery.carry_out(action, uow)

    return on_action_due


async def on_debt_imported(event: DecodedEvent, uow: UnitOfWork[NotifierRepository]) -> None:
    debt = event.payload
    if not isinstance(debt, DebtImported):
        raise TypeError(f"expected DebtImported, got {type(debt).__name__}")
    await handlers.record_debt(debt, uow)


async def on_payment_received(event: DecodedEvent, uow: UnitOfWork[NotifierRepository]) -> None:
    payment = event.payload
    if not isinstance(payment, PaymentReceived):
        raise TypeError(f"expected PaymentReceived, got {type(payment).__name__}")
    await handlers.record_payment(payment, uow)

"""Kafka entrypoint: the runtime's consumer decodes and deduplicates; this only translates the
decoded event into the handler's call."""

from collections.abc import Sequence

from recupero_events import ActionDue, DebtImported, DecodedEvent, PaymentReceived
from recupero_notifier import handlers
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_runtime.consumer import Batched
from recupero_runtime.db import UnitOfWork


def action_due_handler(delivery: handlers.ActionDelivery) -> Batched:
    """A poll's due actions at once: one claim of their attempts, concurrent sends, one
    transaction for their results and events (`handlers.carry_out_actions`)."""

    async def on_actions_due(
        events: Sequence[DecodedEvent], uow: UnitOfWork[NotifierRepository]
    ) -> None:
        actions: list[ActionDue] = []
        correlation_ids = {}
        for event in events:
            action = event.payload
            if not isinstance(action, ActionDue):
                raise TypeError(f"expected ActionDue, got {type(action).__name__}")
            actions.append(action)
            correlation_ids[action.action_id] = event.correlation_id
        await delivery.carry_out_batch(actions, uow, correlation_ids)

    return Batched(on_actions_due)


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

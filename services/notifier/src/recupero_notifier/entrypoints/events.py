"""Kafka entrypoint: the runtime's consumer decodes and deduplicates; this only translates the
decoded event into the handler's call."""

from recupero_events import ActionDue, DecodedEvent
from recupero_notifier import handlers
from recupero_notifier.adapters.email import EmailSender
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_notifier.adapters.templates import JinjaTemplates
from recupero_runtime.consumer import Handler
from recupero_runtime.db import UnitOfWork


def action_due_handler(
    *, attempts: handlers.AttemptUnits, sender: EmailSender, templates: JinjaTemplates
) -> Handler:
    async def on_action_due(event: DecodedEvent, uow: UnitOfWork[NotifierRepository]) -> None:
        action = event.payload
        if not isinstance(action, ActionDue):
            raise TypeError(f"expected ActionDue, got {type(action).__name__}")
        await handlers.carry_out_action(
            action, uow, attempts=attempts, sender=sender, templates=templates
        )

    return on_action_due

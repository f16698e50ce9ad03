"""Kafka entrypoint: the runtime's consumer decodes and deduplicates; this only translates the
decoded event into the handler's call."""

from collections.abc import Mapping
from datetime import timedelta

from recupero_events import ActionDue, Channel, DecodedEvent
from recupero_notifier import handlers
from recupero_notifier.adapters.channels import ChannelAdapter
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_notifier.adapters.templates import JinjaTemplates
from recupero_runtime.consumer import Handler
from recupero_runtime.db import UnitOfWork


def action_due_handler(
    *,
    attempts: handlers.AttemptUnits,
    channels: Mapping[Channel, ChannelAdapter],
    templates: JinjaTemplates,
    unconfirmed_wait: timedelta,
) -> Handler:
    async def on_action_due(event: DecodedEvent, uow: UnitOfWork[NotifierRepository]) -> None:
        action = event.payload
        if not isinstance(action, ActionDue):
            raise TypeError(f"expected ActionDue, got {type(action).__name__}")
        await handlers.carry_out_action(
            action,
            uow,
            attempts=attempts,
            channels=channels,
            templates=templates,
            unconfirmed_wait=unconfirmed_wait,
        )

    return on_action_due

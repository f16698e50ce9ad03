"""Notifier's use cases as plain async functions over a unit of work and explicit adapters.

Exactly-once-visible delivery of an action:

1. If the action's delivery is already `sent`, do nothing: a redelivered or re-emitted action never
   reaches the debtor twice.
2. Render and compose the message first, so an unknown template or a missing address fails before
   any attempt is recorded (the consumer retries, then dead-letters it).
3. Record the attempt (`sending`, attempts + 1) in its OWN committed transaction before calling the
   provider, so a crash mid-send leaves a trace of how often the debtor may have been contacted.
4. Send, with the Message-ID derived from the action id as the idempotency key.
5. In the consumer's unit of work: mark `sent` and publish `message-sent` through the outbox; both
   commit with the inbox entry of the event, or not at all.

The gap SMTP cannot close: if the process dies after the server accepted the message and before
step 5 commits, the redelivery sends it again. It carries the same Message-ID, and mailboxes
collapse messages with identical Message-IDs, so the debtor sees one email.
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

import structlog

from recupero_events import ActionDue, Channel, MessageSent
from recupero_notifier.adapters.email import EmailSender
from recupero_notifier.adapters.templates import JinjaTemplates
from recupero_notifier.domain.messages import ReminderContext, compose_email
from recupero_runtime.db import Work

log = structlog.get_logger()

EMAIL_PROVIDER = "smtp"


class Deliveries(Protocol):
    """The delivery records the handler needs (`adapters.repository.NotifierRepository`)."""

    async def delivery_status(self, tenant_id: str, action_id: UUID) -> str | None: ...

    async def record_attempt(self, action: ActionDue, message_id: str) -> int | None: ...

    async def mark_sent(self, tenant_id: str, action_id: UUID, sent_at: datetime) -> None: ...

    async def record_unsupported_channel(self, action: ActionDue) -> None: ...


class AttemptUnit(Work[Deliveries], Protocol):
    """A unit of work of its own, committed before the provider is called."""

    async def commit(self) -> None: ...


AttemptUnits = Callable[[], AbstractAsyncContextManager[AttemptUnit]]


async def carry_out_action(
    action: ActionDue,
    uow: Work[Deliveries],
    *,
    attempts: AttemptUnits,
    sender: EmailSender,
    templates: JinjaTemplates,
) -> None:
    """Contact the debtor as the action says, at most once as the debtor sees it.

    `uow` is the consumer's unit of work; `attempts` opens a separate one (the service's
    `unit_of_work` factory) whose commit does not wait for the provider call.
    """
    if action.channel is not Channel.EMAIL:
        # Other channels arrive in later issues; record the action so it is not silently lost.
        await uow.repo.record_unsupported_channel(action)
        log.warning(
            "channel_not_supported",
            action_id=str(action.action_id),
            channel=action.channel.value,
        )
        return

    if await uow.repo.delivery_status(action.tenant_id, action.action_id) == "sent":
        log.info("action_already_delivered", action_id=str(action.action_id))
        return

    rendered = templates.render(action.template, ReminderContext.for_action(action))
    email = compose_email(action, rendered)

    async with attempts() as attempt_uow:
        attempt = await attempt_uow.repo.record_attempt(action, email.message_id)
        await attempt_uow.commit()
    if attempt is None:
        # Another consumer finished it between our check and our claim.
        log.info("action_already_delivered", action_id=str(action.action_id))
        return

    await sender.send(email)
    sent_at = datetime.now(UTC)
    log.info(
        "email_sent",
        action_id=str(action.action_id),
        message_id=email.message_id,
        template=action.template,
        attempt=attempt,
    )

    await uow.repo.mark_sent(action.tenant_id, action.action_id, sent_at)
    uow.publish(
        MessageSent(
            tenant_id=action.tenant_id,
            debtor_id=action.debtor_id,
            action_id=action.action_id,
            channel=action.channel,
            provider=EMAIL_PROVIDER,
            provider_message_id=email.message_id,
            template=action.template,
            sent_at=sent_at,
        )
    )

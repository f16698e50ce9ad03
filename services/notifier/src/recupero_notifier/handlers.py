"""Notifier's use cases as plain async functions over a unit of work and explicit adapters.

Exactly-once-visible delivery of an action, on every channel:

1. If the action's delivery is already `sent` or `failed`, do nothing: a redelivered or re-emitted
   action never reaches the debtor twice.
2. If an earlier attempt's outcome is unknown (`sending`: the process died or the connection broke
   after the request left) and the provider reports by callback, wait for that callback before
   sending again: it carries the action id and settles the delivery (reconciliation).
3. Render and address the message first, so an unknown template or a missing address fails before
   any attempt is recorded (the consumer retries, then dead-letters it).
4. Record the attempt (`sending`, attempts + 1) in its OWN committed transaction before calling the
   provider: the idempotency record exists before the provider can have seen the message.
5. Send. The adapter retries 429/5xx with backoff and respects the provider's rate limit.
   A permanent refusal marks the delivery `failed` and publishes `message-status-changed`
   (failed, with the reason) so the orchestrator falls back to another channel. A provider still
   unavailable after the retries, or an outcome left unknown, PARKS the delivery: the action is
   kept in its row with a `retry_at` (backoff, never before Retry-After), the Kafka message is
   done, and the retry worker (`resume_parked`) sends it again from PostgreSQL, through these
   same steps, until the provider takes it. Nothing is dead-lettered for an outage.
6. In the consumer's unit of work: mark `sent` and publish `message-sent` through the outbox; both
   commit with the inbox entry of the event, or not at all.

Callbacks (status webhooks, inbound replies, IVR key presses) are applied once each: a replay of
one already applied raises `CallbackReplayed` and changes nothing.

A WhatsApp message from a debtor whose debt the notifier knows (`debt-imported`) is answered by the
self-service bot (`domain.chatbot`) instead of being passed on as a reply, until the debtor asks for
an agent: the conversation state and the bot's events commit with the inbound message; its texts
are sent after that commit.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

import structlog

from recupero_events import (
    ActionDue,
    Channel,
    DebtImported,
    MessageSent,
    MessageStatus,
    MessageStatusChanged,
    Money,
    PaymentReceived,
    PromiseRegistered,
)
from recupero_notifier.adapters.channels import ChannelAdapter
from recupero_notifier.adapters.providers import (
    NotAccepted,
    OutcomeUnknown,
    ProviderRefused,
    ProviderUnavailable,
)
from recupero_notifier.adapters.repository import Delivery, DeliveryOutlook, KnownDebtor
from recupero_notifier.adapters.templates import JinjaTemplates, TenantTemplates
from recupero_notifier.domain import chatbot
from recupero_notifier.domain.locales import tenant_keys
from recupero_notifier.domain.messages import NoEmailAddress, NoPhoneNumber
from recupero_notifier.domain.money import format_money
from recupero_notifier.domain.replies import (
    IVR_AGENT,
    IVR_INVALID,
    IvrChoice,
    is_opt_out,
    ivr_choice,
    ivr_promise_confirmation,
)
from recupero_notifier.domain.retries import ParkingBackoff
from recupero_runtime.consumer import RetryLater
from recupero_runtime.db import Work

log = structlog.get_logger()

# WhatsApp's customer service window: free text is allowed this long after the debtor wrote.
SESSION_WINDOW = timedelta(hours=24)
DETAIL_LENGTH = 200


class Deliveries(TenantTemplates, Protocol):
    """The delivery records the handlers need (`adapters.repository.NotifierRepository`)."""

    async def delivery_outlook(
        self, action: ActionDue, template_keys: tuple[str, ...], session_address: str | None
    ) -> DeliveryOutlook: ...

    async def record_attempt(
        self, action: ActionDue, recipient: str, provider: str
    ) -> int | None: ...

    async def mark_sent(
        self, tenant_id: str, action_id: UUID, message_id: str, sent_at: datetime
    ) -> bool: ...

    async def mark_not_accepted(
        self, tenant_id: str, action_id: UUID, status: str, reason: str
    ) -> None: ...

    async def park(
        self, action: ActionDue, status: str, reason: str, retry_at: datetime
    ) -> None: ...

    async def claim_parked(self, limit: int, lease_until: datetime) -> list[ActionDue]: ...

    async def record_unsupported_channel(self, action: ActionDue) -> None: ...

    async def claim_callback(self, provider: str, callback_key: str) -> bool: ...

    async def claim_status_callback(
        self, provider: str, callback_key: str, action_id: UUID
    ) -> tuple[bool, Delivery | None]: ...

    async def delivery_for_callback(self, action_id: UUID) -> Delivery | None: ...

    async def deliveries_to(self, channel: str, address: str) -> list[Delivery]: ...

    async def note_inbound(self, channel: str, address: str, at: datetime) -> None: ...

    async def record_debt(self, debt: DebtImported, at: datetime) -> None: ...

    async def record_payment(self, payment: PaymentReceived) -> None: ...

    async def debtors_at(self, phone: str, max_promise_days: int) -> list[KnownDebtor]: ...

    async def debtor(
        self, tenant_id: str, debtor_id: str, max_promise_days: int
    ) -> KnownDebtor | None: ...

    async def conversation_for_update(
        self, tenant_id: str, debtor_id: str, channel: str
    ) -> chatbot.ChatState | None: ...

    async def save_conversation(
        self, tenant_id: str, debtor_id: str, channel: str, state: chatbot.ChatState, at: datetime
    ) -> None: ...


class AttemptUnit(Work[Deliveries], Protocol):
    """A unit of work of its own, committed before the provider is called."""

    async def commit(self) -> None: ...


AttemptUnitContext = AbstractAsyncContextManager[AttemptUnit]
AttemptUnits = Callable[[], AttemptUnitContext]


class AwaitingProviderCallback(RetryLater):
    """An earlier attempt may have reached the provider; its callback will settle it."""


class CallbackReplayed(Exception):
    """This provider callback was already applied; applying it again would change nothing."""


async def carry_out_action(
    action: ActionDue,
    uow: Work[Deliveries],
    *,
    attempts: AttemptUnits,
    channels: Mapping[Channel, ChannelAdapter],
    templates: JinjaTemplates,
    unconfirmed_wait: timedelta,
    backoff: ParkingBackoff,
    resuming_parked: bool = False,
) -> None:
    """Contact the debtor as the action says, at most once as the debtor sees it.

    `uow` is the consumer's unit of work; `attempts` opens a separate one (`bootstrap.
    attempt_units`: each statement commits on its own) that does not wait for the provider call.
    `resuming_parked`: the retry worker sends a parked delivery (anyone else leaves it alone).
    """
    adapter = channels.get(action.channel)
    if adapter is None:
        # A channel without configured provider credentials: recorded, not silently lost.
        await uow.repo.record_unsupported_channel(action)
        log.warning(
            "channel_not_configured", action_id=str(action.action_id), channel=action.channel
        )
        return

    # The address first, so the session window is read with the rest; a missing one is raised
    # only once the delivery's state says it would be used.
    try:
        recipient: str | None = adapter.recipient(action)
        no_address: Exception | None = None
    except (NoEmailAddress, NoPhoneNumber) as missing:
        recipient, no_address = None, missing
    # One round trip: the delivery's state, the tenant's template, the session window.
    outlook = await uow.repo.delivery_outlook(
        action,
        tenant_keys(action.contact.locale),
        recipient if action.channel is Channel.WHATSAPP else None,
    )
    state = outlook.state
    if state is not None and state.status in ("sent", "failed"):
        log.info("action_already_delivered", action_id=str(action.action_id), status=state.status)
        return
    if state is not None and state.retry_at is not None and not resuming_parked:
        # A redelivered or re-emitted action whose delivery is parked: the worker sends it.
        log.info("action_parked", action_id=str(action.action_id), retry_at=state.retry_at)
        return
    now = datetime.now(UTC)
    if (
        state is not None
        and state.status == "sending"
        and adapter.confirmed_by_callback
        and state.last_attempt_at is not None
        and now - state.last_attempt_at < unconfirmed_wait
    ):
        raise AwaitingProviderCallback(
            f"action {action.action_id}: the outcome of the attempt at "
            f"{state.last_attempt_at.isoformat()} is unknown; waiting for the provider's callback"
        )

    # The tenant's template for the debtor's locale, else the shipped one (`adapters.templates`).
    rendered = templates.render_found(action, outlook.template)
    if no_address is not None:
        raise no_address
    assert recipient is not None
    session_open = (
        outlook.last_inbound_at is not None and outlook.last_inbound_at >= now - SESSION_WINDOW
    )

    async with attempts() as attempt_uow:
        attempt = await attempt_uow.repo.record_attempt(action, recipient, adapter.provider)
        await attempt_uow.commit()
    if attempt is None:
        # Another consumer (or a callback) finished it between our check and our claim.
        log.info("action_already_delivered", action_id=str(action.action_id))
        return

    try:
        message_id = await adapter.send(action, rendered, session_open)
    except ProviderRefused as refused:
        await uow.repo.mark_not_accepted(
            action.tenant_id, action.action_id, "failed", refused.reason
        )
        uow.publish(
            MessageStatusChanged(
                tenant_id=action.tenant_id,
                debtor_id=action.debtor_id,
                action_id=action.action_id,
                channel=action.channel,
                status=MessageStatus.FAILED,
                occurred_at=datetime.now(UTC),
                detail=refused.reason[:DETAIL_LENGTH],
            )
        )
        log.warning("message_refused", action_id=str(action.action_id), reason=refused.reason)
        return
    except (ProviderUnavailable, OutcomeUnknown) as unavailable:
        # Parked, not retried here: the partition moves on, and the row survives a restart.
        await _park(action, attempt, unavailable, attempts, unconfirmed_wait, backoff)
        return
    except NotAccepted as not_accepted:
        if resuming_parked:
            # Rejected credentials: no Kafka message to dead-letter, so the delivery stays
            # parked (and logged) until an operator fixes the account.
            await _park(action, attempt, not_accepted, attempts, unconfirmed_wait, backoff)
            return
        async with attempts() as attempt_uow:
            await attempt_uow.repo.mark_not_accepted(
                action.tenant_id, action.action_id, "retrying", str(not_accepted)
            )
            await attempt_uow.commit()
        raise

    sent_at = datetime.now(UTC)
    log.info(
        "message_sent",
        action_id=str(action.action_id),
        channel=action.channel,
        provider=adapter.provider,
        message_id=message_id,
        attempt=attempt,
    )
    if await uow.repo.mark_sent(action.tenant_id, action.action_id, message_id, sent_at):
        uow.publish(
            MessageSent(
                tenant_id=action.tenant_id,
                debtor_id=action.debtor_id,
                action_id=action.action_id,
                channel=action.channel,
                provider=adapter.provider,
                provider_message_id=message_id,
                template=action.template,
                sent_at=sent_at,
            )
        )


async def _park(
    action: ActionDue,
    attempt: int,
    reason: Exception,
    attempts: AttemptUnits,
    unconfirmed_wait: timedelta,
    backoff: ParkingBackoff,
) -> None:
    """Keep the action in its delivery row for the retry worker: after the callback wait when
    the outcome is unknown (`sending`), else after the backoff and the provider's Retry-After
    (`retrying`)."""
    unknown = isinstance(reason, OutcomeUnknown)
    retry_after = reason.retry_after if isinstance(reason, ProviderUnavailable) else None
    delay = unconfirmed_wait if unknown else backoff.delay(attempt, retry_after)
    async with attempts() as attempt_uow:
        await attempt_uow.repo.park(
            action,
            "sending" if unknown else "retrying",
            str(reason),
            datetime.now(UTC) + delay,
        )
        await attempt_uow.commit()
    log.warning(
        "delivery_parked",
        action_id=str(action.action_id),
        attempt=attempt,
        retry_in_seconds=round(delay.total_seconds(), 1),
        reason=str(reason),
    )


@dataclass(frozen=True)
class ActionDelivery:
    """`carry_out_action` with what the service wired: for the consumer and the retry worker."""

    attempts: AttemptUnits
    channels: Mapping[Channel, ChannelAdapter]
    templates: JinjaTemplates
    unconfirmed_wait: timedelta
    backoff: ParkingBackoff

    async def carry_out(
        self, action: ActionDue, uow: Work[Deliveries], *, resuming_parked: bool = False
    ) -> None:
        await carry_out_action(
            action,
            uow,
            attempts=self.attempts,
            channels=self.channels,
            templates=self.templates,
            unconfirmed_wait=self.unconfirmed_wait,
            backoff=self.backoff,
            resuming_parked=resuming_parked,
        )

    async def resume_parked(self, action: ActionDue, uow: Work[Deliveries]) -> None:
        await self.carry_out(action, uow, resuming_parked=True)


async def resume_parked(
    units: AttemptUnits,
    *,
    batch_size: int,
    lease: timedelta,
    carry: Callable[[ActionDue, AttemptUnit], Awaitable[None]],
) -> int:
    """Send the parked deliveries that are due: claim a batch (leased, committed), then carry
    out each action in a unit of work of its own, as the consumer would. Returns how many."""
    async with units() as claim:
        parked = await claim.repo.claim_parked(batch_size, datetime.now(UTC) + lease)
        await claim.commit()

    async def resume(action: ActionDue) -> None:
        try:
            async with units() as uow:
                await carry(action, uow)
                await uow.commit()
        except Exception:
            # Still parked: its lease ends and it is claimed again.
            log.exception("parked_delivery_failed", action_id=str(action.action_id))

    await asyncio.gather(*(resume(action) for action in parked))
    return len(parked)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A provider's signed word about one message it took."""

    provider: str
    action_id: UUID
    message_id: str
    # None for progress Recupero does not publish (`queued`, `sent`): it still reconciles.
    status: MessageStatus | None
    occurred_at: datetime
    detail: str | None
    # Unique per callback (message and status): its replay is refused.
    callback_key: str


def any_tenant(tenant_id: str) -> bool:
    return True


async def apply_status_report(
    report: StatusReport,
    uow: Work[Deliveries],
    tenant_served: Callable[[str], bool] = any_tenant,
) -> None:
    """`tenant_served`: whose messages the reporting account may speak about; a status about
    another tenant's message (signed with one tenant's secret) changes nothing."""
    claimed, delivery = await uow.repo.claim_status_callback(
        report.provider, report.callback_key, report.action_id
    )
    if not claimed:
        raise CallbackReplayed(f"{report.provider} callback {report.callback_key}")
    if (
        delivery is None
        or not tenant_served(delivery.tenant_id)
        or delivery.provider != report.provider
        or delivery.message_id not in (None, report.message_id)
    ):
        log.warning("status_for_unknown_message", message_id=report.message_id)
        return
    channel = Channel(delivery.channel)
    if delivery.status in ("sending", "retrying") and await uow.repo.mark_sent(
        delivery.tenant_id, delivery.action_id, report.message_id, report.occurred_at
    ):
        # The provider took the message but our attempt never learnt it (crash, lost response):
        # the callback settles it, and no second send happens.
        log.info("delivery_reconciled", action_id=str(delivery.action_id))
        uow.publish(
            MessageSent(
                tenant_id=delivery.tenant_id,
                debtor_id=delivery.debtor_id,
                action_id=delivery.action_id,
                channel=channel,
                provider=report.provider,
                provider_message_id=report.message_id,
                template=delivery.template,
                sent_at=report.occurred_at,
            )
        )
    if report.status is not None:
        uow.publish(
            MessageStatusChanged(
                tenant_id=delivery.tenant_id,
                debtor_id=delivery.debtor_id,
                action_id=delivery.action_id,
                channel=channel,
                status=report.status,
                occurred_at=report.occurred_at,
                detail=None if report.detail is None else report.detail[:DETAIL_LENGTH],
            )
        )


@dataclass(frozen=True, slots=True)
class InboundReply:
    """Something a debtor wrote to us on a channel."""

    provider: str
    channel: Channel
    # E.164, as deliveries record recipients.
    address: str
    text: str
    received_at: datetime
    callback_key: str


@dataclass(frozen=True, slots=True)
class ChatbotPolicy:
    """How the WhatsApp bot behaves for every tenant (settings, until tenants configure it)."""

    max_promise_days: int
    # `{tenant_id}` and `{debtor_id}` are filled in; None: an agent sends the link.
    payment_link_url: str | None


@dataclass(frozen=True, slots=True)
class OutgoingText:
    """A session text to send once the inbound message's transaction has committed."""

    to: str
    text: str


async def apply_inbound_reply(
    reply: InboundReply,
    uow: Work[Deliveries],
    bot: ChatbotPolicy | None = None,
    tenant_served: Callable[[str], bool] = any_tenant,
) -> list[OutgoingText]:
    """A reply is published against the latest message the debtor got on that channel. An
    opt-out keyword is published for every creditor that wrote to this number on this channel:
    one "BAJA" to a shared sender number stops them all. On WhatsApp, a debtor the bot knows
    talks to the bot instead; the texts it answers are returned for the caller to send."""
    if not await uow.repo.claim_callback(reply.provider, reply.callback_key):
        raise CallbackReplayed(f"{reply.provider} inbound {reply.callback_key}")
    await uow.repo.note_inbound(reply.channel.value, reply.address, reply.received_at)
    opt_out = is_opt_out(reply.text)
    # Only the tenants of the number the debtor wrote to hear about it.
    deliveries = [
        delivery
        for delivery in await uow.repo.deliveries_to(reply.channel.value, reply.address)
        if tenant_served(delivery.tenant_id)
    ]
    if not opt_out and bot is not None and reply.channel is Channel.WHATSAPP:
        answered = await _converse(reply, deliveries, uow, bot, tenant_served)
        if answered is not None:
            return answered
    if not deliveries:
        log.info("reply_from_unknown_number", channel=reply.channel, opt_out=opt_out)
        return []
    for delivery in deliveries if opt_out else deliveries[:1]:
        uow.publish(
            MessageStatusChanged(
                tenant_id=delivery.tenant_id,
                debtor_id=delivery.debtor_id,
                action_id=delivery.action_id,
                channel=reply.channel,
                status=MessageStatus.REPLIED,
                occurred_at=reply.received_at,
                detail=reply.text[:DETAIL_LENGTH],
                opt_out=opt_out,
            )
        )
    return []


async def _converse(
    reply: InboundReply,
    deliveries: list[Delivery],
    uow: Work[Deliveries],
    bot: ChatbotPolicy,
    tenant_served: Callable[[str], bool],
) -> list[OutgoingText] | None:
    """The bot's turn; None when the bot does not answer (unknown debtor, or an agent's
    conversation), so the message is passed on as a reply."""
    known = [
        debtor
        for debtor in await uow.repo.debtors_at(reply.address, bot.max_promise_days)
        if tenant_served(debtor.tenant_id)
    ]
    if not known:
        return None
    # A number shared by debtors of several creditors talks about the latest one that wrote.
    latest = deliveries[0] if deliveries else None
    debtor = next(
        (
            candidate
            for candidate in known
            if latest is not None
            and (candidate.tenant_id, candidate.debtor_id) == (latest.tenant_id, latest.debtor_id)
        ),
        known[0],
    )
    tenant_id, debtor_id, channel = debtor.tenant_id, debtor.debtor_id, reply.channel.value
    state = await uow.repo.conversation_for_update(tenant_id, debtor_id, channel)
    if state is not None and state.step is chatbot.Step.HANDED_TO_AGENT:
        return None
    turn = chatbot.reply(state, reply.text, debtor.facts, reply.received_at)
    await uow.repo.save_conversation(tenant_id, debtor_id, channel, turn.state, reply.received_at)
    texts = list(turn.texts)
    # Hand-offs and reports are published against the debtor's latest WhatsApp message; a debtor
    # who wrote first gets an id derived from the inbound message (it matches no action).
    action_id = next(
        (d.action_id for d in deliveries if (d.tenant_id, d.debtor_id) == (tenant_id, debtor_id)),
        uuid5(NAMESPACE_URL, f"{reply.provider}:{reply.callback_key}"),
    )

    def to_agent(detail: str) -> None:
        # `replied` is what the orchestrator stops the strategy on and hands to an agent for.
        uow.publish(
            MessageStatusChanged(
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                action_id=action_id,
                channel=reply.channel,
                status=MessageStatus.REPLIED,
                occurred_at=reply.received_at,
                detail=detail[:DETAIL_LENGTH],
            )
        )

    for effect in turn.effects:
        match effect:
            case chatbot.RegisterPromise(amount_minor, currency, promised_on):
                uow.publish(
                    PromiseRegistered(
                        tenant_id=tenant_id,
                        debtor_id=debtor_id,
                        # The inbound message is applied once: so is its promise.
                        promise_id=uuid5(NAMESPACE_URL, f"{reply.provider}:{reply.callback_key}"),
                        amount=Money(amount_minor=amount_minor, currency=currency),
                        promised_on=promised_on,
                        source="chatbot",
                        registered_at=reply.received_at,
                    )
                )
            case chatbot.HandToAgent(reason):
                to_agent(f"chatbot: hand-off to an agent ({reason})")
            case chatbot.ReportPayment(text):
                to_agent(f"chatbot: payment reported, to verify: {text}")
            case chatbot.SendPaymentLink():
                if bot.payment_link_url is None:
                    to_agent("chatbot: asked for a payment link")
                else:
                    texts.append(
                        bot.payment_link_url.format(tenant_id=tenant_id, debtor_id=debtor_id)
                    )
    log.info(
        "chatbot_turn",
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        step=turn.state.step,
        effects=[type(effect).__name__ for effect in turn.effects],
    )
    return [OutgoingText(reply.address, text) for text in texts]


async def record_debt(debt: DebtImported, uow: Work[Deliveries]) -> None:
    """The bot's copy of the debtor's debt."""
    await uow.repo.record_debt(debt, datetime.now(UTC))


async def record_payment(payment: PaymentReceived, uow: Work[Deliveries]) -> None:
    await uow.repo.record_payment(payment)


async def apply_ivr_digits(
    provider: str,
    action_id: UUID,
    call_sid: str,
    digits: str,
    at: datetime,
    uow: Work[Deliveries],
    max_promise_days: int,
    tenant_served: Callable[[str], bool] = any_tenant,
) -> str:
    """The debtor pressed a key on a collection call; returns what the caller hears.

    1 registers a promise to pay the balance the notifier knows (`debt-imported` less payments)
    by the latest date the tenant's promise policy allows (the bot's, `chatbot.promise_window`);
    its id derives from the call, so a replayed gather cannot register it twice. 2, any other
    key, or a 1 from a debtor whose balance is unknown is published as a reply, which hands the
    case to an agent."""
    if not await uow.repo.claim_callback(provider, f"{call_sid}:gather"):
        raise CallbackReplayed(f"{provider} gather {call_sid}")
    choice = ivr_choice(digits)
    delivery = await uow.repo.delivery_for_callback(action_id)
    if (
        delivery is None
        or not tenant_served(delivery.tenant_id)
        or delivery.message_id not in (None, call_sid)
    ):
        log.warning("digits_for_unknown_call", call_sid=call_sid)
        return IVR_INVALID if choice is None else IVR_AGENT
    detail = f"ivr {digits}: {choice.value if choice else 'not an option'}"
    if choice is IvrChoice.PROMISE_TO_PAY:
        known = await uow.repo.debtor(delivery.tenant_id, delivery.debtor_id, max_promise_days)
        promise = None if known is None else chatbot.promise_of_the_balance(known.facts, at)
        if promise is not None:
            uow.publish(
                PromiseRegistered(
                    tenant_id=delivery.tenant_id,
                    debtor_id=delivery.debtor_id,
                    promise_id=uuid5(NAMESPACE_URL, f"{provider}:{call_sid}:promise"),
                    amount=Money(amount_minor=promise.amount_minor, currency=promise.currency),
                    promised_on=promise.promised_on,
                    source="ivr",
                    registered_at=at,
                )
            )
            return ivr_promise_confirmation(
                format_money(promise.amount_minor, promise.currency), promise.promised_on
            )
        detail += " (balance unknown: to an agent)"
    uow.publish(
        MessageStatusChanged(
            tenant_id=delivery.tenant_id,
            debtor_id=delivery.debtor_id,
            action_id=delivery.action_id,
            channel=Channel.IVR,
            status=MessageStatus.REPLIED,
            occurred_at=at,
            detail=detail,
        )
    )
    return IVR_INVALID if choice is None else IVR_AGENT

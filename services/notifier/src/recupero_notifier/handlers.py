"""Notifier's use cases as plain async functions over a unit of work and explicit adapters.

Exactly-once-visible delivery of actions, on every channel, a consumer's batch at a time (one
action is a batch of one); each step is one statement for the whole batch:

1. If an action's delivery is already `sent` or `failed`, do nothing: a redelivered or re-emitted
   action never reaches the debtor twice.
2. If an earlier attempt's outcome is unknown (`sending`: the process died or the connection broke
   after the request left) and the provider reports by callback, the delivery is parked until
   that callback had time to come: it carries the action id and settles the delivery
   (reconciliation); only then does the retry worker send again.
3. Render and address the messages first, so an unknown template or a missing address fails
   before any attempt is recorded (the consumer retries that action alone, then dead-letters it).
4. Record the attempts (`sending`, attempts + 1) in their OWN committed statement before calling
   the provider: the idempotency record exists before the provider can have seen a message.
5. Send, the batch's messages at once. The adapter retries 429/5xx with backoff and respects the
   provider's rate limit.
   A permanent refusal marks the delivery `failed` and publishes `message-status-changed`
   (failed, with the reason) so the orchestrator falls back to another channel. A provider still
   unavailable after the retries, or an outcome left unknown, PARKS the delivery: the action is
   kept in its row with a `retry_at` (backoff, never before Retry-After), the Kafka message is
   done, and the retry worker (`resume_parked`) sends it again from PostgreSQL, through these
   same steps, until the provider takes it. Nothing is dead-lettered for an outage. Rejected
   credentials park it too (logged), until an operator fixes the account.
6. In the consumer's unit of work: mark the batch `sent` and publish `message-sent` through the
   outbox; both commit with the inbox entries of the events, or not at all.

Callbacks (status webhooks, inbound replies, IVR key presses) are applied once each: a replay of
one already applied raises `CallbackReplayed` and changes nothing.

A WhatsApp message from a debtor whose debt the notifier knows (`debt-imported`) is answered by the
self-service bot (`domain.chatbot`) instead of being passed on as a reply, until the debtor asks for
an agent: the conversation state and the bot's events commit with the inbound message; its texts
are sent after that commit.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
from recupero_notifier.domain.messages import NoEmailAddress, NoPhoneNumber, RenderedMessage
from recupero_notifier.domain.money import format_money
from recupero_notifier.domain.replies import (
    IvrChoice,
    is_opt_out,
    ivr_choice,
    ivr_promise_confirmation,
    ivr_texts,
)
from recupero_notifier.domain.retries import ParkingBackoff
from recupero_runtime.db import Work

log = structlog.get_logger()

# WhatsApp's customer service window: free text is allowed this long after the debtor wrote.
SESSION_WINDOW = timedelta(hours=24)
DETAIL_LENGTH = 200
# Calls of a send that failed with an error the adapters do not sort (a bug, a library's
# surprise), a moment apart, before the delivery is parked as an unknown outcome.
UNFORESEEN_ERROR_TRIES = 3


class Deliveries(TenantTemplates, Protocol):
    """The delivery records the handlers need (`adapters.repository.NotifierRepository`)."""

    async def delivery_outlooks(
        self, asked: Sequence[tuple[ActionDue, tuple[str, ...], str | None]]
    ) -> list[DeliveryOutlook]: ...

    async def record_attempts(
        self, attempts: Sequence[tuple[ActionDue, str, str]]
    ) -> dict[UUID, int]: ...

    async def mark_all_sent(self, sent: Sequence[tuple[str, UUID, str, datetime]]) -> set[UUID]: ...

    async def mark_not_accepted(
        self, tenant_id: str, action_id: UUID, status: str, reason: str
    ) -> None: ...

    async def park(
        self, action: ActionDue, status: str, reason: str, retry_at: datetime
    ) -> None: ...

    async def claim_parked(self, limit: int, lease_until: datetime) -> list[ActionDue]: ...

    async def record_unsupported_channel(self, action: ActionDue) -> None: ...

    async def claim_callback(self, provider: str, callback_key: str) -> bool: ...

    async def claim_status_callbacks(
        self, provider: str, callbacks: Sequence[tuple[str, UUID]]
    ) -> list[tuple[bool, Delivery | None]]: ...

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


class CallbackReplayed(Exception):
    """This provider callback was already applied; applying it again would change nothing."""


@dataclass(frozen=True, slots=True)
class _Addressed:
    action: ActionDue
    adapter: ChannelAdapter
    # None with `no_address` set: raised only once the delivery's state says it would be used.
    recipient: str | None
    no_address: Exception | None


@dataclass(frozen=True, slots=True)
class _Ready:
    action: ActionDue
    adapter: ChannelAdapter
    recipient: str
    rendered: RenderedMessage
    session_open: bool


async def carry_out_actions(
    actions: Sequence[ActionDue],
    uow: Work[Deliveries],
    *,
    attempts: AttemptUnits,
    channels: Mapping[Channel, ChannelAdapter],
    templates: JinjaTemplates,
    unconfirmed_wait: timedelta,
    backoff: ParkingBackoff,
    resuming_parked: bool = False,
    correlation_ids: Mapping[UUID, str | None] | None = None,
    max_in_flight: int = 16,
) -> None:
    """Contact each debtor as its action says, at most once as the debtor sees it.

    `uow` is the consumer's unit of work; `attempts` opens a separate one (`bootstrap.
    attempt_units`: each statement commits on its own) that does not wait for the provider calls.
    `resuming_parked`: the retry worker sends parked deliveries (anyone else leaves them alone).
    `correlation_ids`: the event each action came in, by action id, for the events published.
    """
    correlation = correlation_ids or {}
    # An action re-emitted within one batch is carried out once: its delivery row is per action.
    distinct: dict[UUID, ActionDue] = {}
    for action in actions:
        distinct.setdefault(action.action_id, action)
    addressed: list[_Addressed] = []
    for action in distinct.values():
        adapter = channels.get(action.channel)
        if adapter is None:
            # A channel without configured provider credentials: recorded, not silently lost.
            await uow.repo.record_unsupported_channel(action)
            log.warning(
                "channel_not_configured", action_id=str(action.action_id), channel=action.channel
            )
            continue
        try:
            addressed.append(_Addressed(action, adapter, adapter.recipient(action), None))
        except (NoEmailAddress, NoPhoneNumber) as missing:
            addressed.append(_Addressed(action, adapter, None, missing))
    if not addressed:
        return
    # One round trip: each delivery's state, the tenant's template, the session window.
    outlooks = await uow.repo.delivery_outlooks(
        [
            (
                item.action,
                tenant_keys(item.action.contact.locale),
                item.recipient if item.action.channel is Channel.WHATSAPP else None,
            )
            for item in addressed
        ]
    )
    now = datetime.now(UTC)
    ready: list[_Ready] = []
    for item, outlook in zip(addressed, outlooks, strict=True):
        action, state = item.action, outlook.state
        if state is not None and state.status in ("sent", "failed"):
            log.info("action_already_delivered", action_id=str(action.action_id))
            continue
        if state is not None and state.retry_at is not None and not resuming_parked:
            # A redelivered or re-emitted action whose delivery is parked: the worker sends it.
            log.info("action_parked", action_id=str(action.action_id), retry_at=state.retry_at)
            continue
        if (
            state is not None
            and state.status == "sending"
            and item.adapter.confirmed_by_callback
            and state.last_attempt_at is not None
            and now - state.last_attempt_at < unconfirmed_wait
        ):
            unknown = OutcomeUnknown(
                f"the outcome of the attempt at {state.last_attempt_at.isoformat()} is unknown;"
                " waiting for the provider's callback"
            )
            await _park(action, 0, unknown, attempts, unconfirmed_wait, backoff)
            continue
        # The tenant's template for the debtor's locale, else the shipped one.
        rendered = templates.render_found(action, outlook.template)
        if item.no_address is not None:
            raise item.no_address
        assert item.recipient is not None
        session_open = (
            outlook.last_inbound_at is not None and outlook.last_inbound_at >= now - SESSION_WINDOW
        )
        ready.append(_Ready(action, item.adapter, item.recipient, rendered, session_open))
    if not ready:
        return

    async with attempts() as attempt_uow:
        attempt_numbers = await attempt_uow.repo.record_attempts(
            [(r.action, r.recipient, r.adapter.provider) for r in ready]
        )
        await attempt_uow.commit()
    claimed = [r for r in ready if r.action.action_id in attempt_numbers]
    for r in ready:
        if r.action.action_id not in attempt_numbers:
            # Another consumer (or a callback) finished it between our check and our claim.
            log.info("action_already_delivered", action_id=str(r.action.action_id))

    in_flight = asyncio.Semaphore(max_in_flight)

    async def send(r: _Ready) -> str | Exception:
        async with in_flight:
            tries = 1
            while True:
                try:
                    return await r.adapter.send(r.action, r.rendered, r.session_open)
                except (NotAccepted, OutcomeUnknown) as ended:
                    return ended
                except Exception as unexpected:
                    if tries >= UNFORESEEN_ERROR_TRIES:
                        # Not lost with the batch's other results: parked as an unknown outcome.
                        log.exception("send_failed", action_id=str(r.action.action_id))
                        return OutcomeUnknown(f"{type(unexpected).__name__}: {unexpected}")
                    log.warning("send_failed_trying_again", error=repr(unexpected), tries=tries)
                await asyncio.sleep(0.1 * tries)
                tries += 1
                # As the consumer's retry would: the new attempt is counted before the call.
                async with attempts() as attempt_uow:
                    again = await attempt_uow.repo.record_attempts(
                        [(r.action, r.recipient, r.adapter.provider)]
                    )
                    await attempt_uow.commit()
                if r.action.action_id not in again:
                    return OutcomeUnknown("settled meanwhile by its callback")
                attempt_numbers[r.action.action_id] = again[r.action.action_id]

    outcomes = await asyncio.gather(*(send(r) for r in claimed))
    sent: dict[UUID, tuple[_Ready, str, datetime]] = {}
    for r, outcome in zip(claimed, outcomes, strict=True):
        action = r.action
        if isinstance(outcome, str):
            sent[action.action_id] = (r, outcome, datetime.now(UTC))
        elif isinstance(outcome, ProviderRefused):
            await uow.repo.mark_not_accepted(
                action.tenant_id, action.action_id, "failed", outcome.reason
            )
            uow.publish(
                MessageStatusChanged(
                    tenant_id=action.tenant_id,
                    debtor_id=action.debtor_id,
                    action_id=action.action_id,
                    channel=action.channel,
                    status=MessageStatus.FAILED,
                    occurred_at=datetime.now(UTC),
                    detail=outcome.reason[:DETAIL_LENGTH],
                ),
                correlation.get(action.action_id),
            )
            log.warning("message_refused", action_id=str(action.action_id), reason=outcome.reason)
        else:
            # Parked, not retried here: the partition moves on, and the row survives a restart.
            await _park(
                action,
                attempt_numbers[action.action_id],
                outcome,
                attempts,
                unconfirmed_wait,
                backoff,
            )
    if not sent:
        return
    marked = await uow.repo.mark_all_sent(
        [
            (r.action.tenant_id, action_id, message_id, sent_at)
            for action_id, (r, message_id, sent_at) in sent.items()
        ]
    )
    # One line a batch: each message's provider id and attempt are in its delivery row.
    log.info("messages_sent", count=len(sent), settled_by_callback_first=len(sent) - len(marked))
    for action_id, (r, message_id, sent_at) in sent.items():
        action = r.action
        if action_id in marked:
            uow.publish(
                MessageSent(
                    tenant_id=action.tenant_id,
                    debtor_id=action.debtor_id,
                    action_id=action_id,
                    channel=action.channel,
                    provider=r.adapter.provider,
                    provider_message_id=message_id,
                    template=action.template,
                    sent_at=sent_at,
                ),
                correlation.get(action_id),
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
    """`carry_out_actions` with what the service wired: for the consumer and the retry worker."""

    attempts: AttemptUnits
    channels: Mapping[Channel, ChannelAdapter]
    templates: JinjaTemplates
    unconfirmed_wait: timedelta
    backoff: ParkingBackoff
    # Provider calls of one batch in flight at once (each also waits for its rate limit).
    max_in_flight: int = 16

    async def carry_out_batch(
        self,
        actions: Sequence[ActionDue],
        uow: Work[Deliveries],
        correlation_ids: Mapping[UUID, str | None] | None = None,
        *,
        resuming_parked: bool = False,
    ) -> None:
        await carry_out_actions(
            actions,
            uow,
            attempts=self.attempts,
            channels=self.channels,
            templates=self.templates,
            unconfirmed_wait=self.unconfirmed_wait,
            backoff=self.backoff,
            resuming_parked=resuming_parked,
            correlation_ids=correlation_ids,
            max_in_flight=self.max_in_flight,
        )

    async def resume_parked(self, action: ActionDue, uow: Work[Deliveries]) -> None:
        await self.carry_out_batch([action], uow, resuming_parked=True)


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
    """`apply_status_reports` for one; its replay raises `CallbackReplayed`."""
    if not await apply_status_reports([report], uow, tenant_served):
        raise CallbackReplayed(f"{report.provider} callback {report.callback_key}")


async def apply_status_reports(
    reports: Sequence[StatusReport],
    uow: Work[Deliveries],
    tenant_served: Callable[[str], bool] = any_tenant,
) -> int:
    """One notification's reports of one provider, claimed and looked up in one statement, the
    deliveries they settle marked `sent` in one more; returns how many were new (a replayed one
    changes nothing). `tenant_served`: whose messages the reporting account may speak about; a
    status about another tenant's message (signed with one tenant's secret) changes nothing."""
    distinct = list({report.callback_key: report for report in reports}.values())
    if not distinct:
        return 0
    claims = await uow.repo.claim_status_callbacks(
        distinct[0].provider, [(report.callback_key, report.action_id) for report in distinct]
    )
    applied = 0
    # Deliveries settled in action id order, as a batch's locks them (one message's statuses
    # keep their order): no deadlock between a webhook and a batch.
    claimed_reports = sorted(zip(distinct, claims, strict=True), key=lambda pair: pair[0].action_id)
    settling: list[tuple[StatusReport, Delivery]] = []
    for report, (claimed, delivery) in claimed_reports:
        if not claimed:
            continue
        applied += 1
        if (
            delivery is None
            or not tenant_served(delivery.tenant_id)
            or delivery.provider != report.provider
            or delivery.message_id not in (None, report.message_id)
        ):
            log.warning("status_for_unknown_message", message_id=report.message_id)
            continue
        settling.append((report, delivery))
    # The provider took these messages but our attempt has not recorded it yet (its batch is
    # still sending, or it crashed, or the response was lost): the first status of each settles
    # the delivery, and no second send happens. One statement for the whole notification.
    unsettled: dict[UUID, tuple[StatusReport, Delivery]] = {}
    for report, delivery in settling:
        if delivery.status in ("sending", "retrying"):
            unsettled.setdefault(delivery.action_id, (report, delivery))
    reconciled = (
        await uow.repo.mark_all_sent(
            [
                (delivery.tenant_id, action_id, report.message_id, report.occurred_at)
                for action_id, (report, delivery) in unsettled.items()
            ]
        )
        if unsettled
        else set()
    )
    if reconciled:
        log.debug("deliveries_reconciled", count=len(reconciled))
    for report, delivery in settling:
        if delivery.action_id in reconciled and unsettled[delivery.action_id][0] is report:
            uow.publish(
                MessageSent(
                    tenant_id=delivery.tenant_id,
                    debtor_id=delivery.debtor_id,
                    action_id=delivery.action_id,
                    channel=Channel(delivery.channel),
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
                    channel=Channel(delivery.channel),
                    status=report.status,
                    occurred_at=report.occurred_at,
                    detail=None if report.detail is None else report.detail[:DETAIL_LENGTH],
                )
            )
    return applied


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
    locale: str = "es-MX",
) -> str:
    """The debtor pressed a key on a collection call; returns what the caller hears, in the
    form of address of the call's locale.

    1 registers a promise to pay the balance the notifier knows (`debt-imported` less payments)
    by the latest date the tenant's promise policy allows (the bot's, `chatbot.promise_window`);
    its id derives from the call, so a replayed gather cannot register it twice. 2, any other
    key, or a 1 from a debtor whose balance is unknown is published as a reply, which hands the
    case to an agent."""
    if not await uow.repo.claim_callback(provider, f"{call_sid}:gather"):
        raise CallbackReplayed(f"{provider} gather {call_sid}")
    choice, texts = ivr_choice(digits), ivr_texts(locale)
    delivery = await uow.repo.delivery_for_callback(action_id)
    if (
        delivery is None
        or not tenant_served(delivery.tenant_id)
        or delivery.message_id not in (None, call_sid)
    ):
        log.warning("digits_for_unknown_call", call_sid=call_sid)
        return texts.invalid if choice is None else texts.agent
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
                format_money(promise.amount_minor, promise.currency), promise.promised_on, locale
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
    return texts.invalid if choice is None else texts.agent

"""Walks a debtor through a tenant strategy on the durable schedule.

`replan` runs the pure planner on what the database knows about the debtor and stores its proposals
under their stable keys until nothing changes (a skipped step makes the next one proposable).
`fire_strategy_action` handles one claimed action at its due time: the planner runs again without
that action and it fires only if the same key is proposed again; then the contact policy allows,
moves or drops it, and every decision is recorded with the rule that made it.
"""

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import structlog

from recupero_events import (
    ActionDue,
    Channel,
    ContactDetails,
    Money,
    PostalAddress,
    PromiseRegistered,
    PromiseResolved,
)
from recupero_events import PromiseOutcome as PublishedOutcome
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.agent_work import task_priority
from recupero_orchestrator.domain.channels import (
    CONTACT_CHANNELS,
    ContactChannel,
    published_channel,
)
from recupero_orchestrator.domain.contact_policy import (
    ContactPolicy,
    ContactRecord,
    DebtorContactContext,
    Decision,
    Hold,
    HoldKind,
    ProposedAction,
    TenantPolicyOverride,
    Verdict,
    decide,
    default_policy_for,
    relevant_history,
    tighten,
)
from recupero_orchestrator.domain.promises import (
    DEFAULT_GRACE_DAYS,
    Promise,
    PromiseOutcome,
    ReceivedPayment,
    evaluate_promise,
    promise_deadline,
)
from recupero_orchestrator.domain.strategies import (
    ActionKind,
    ActionRecord,
    ActionStatus,
    DebtorState,
    Plan,
    PlannedAction,
    PlanStatus,
    StrategyDocument,
    compiled,
    key_prefix,
    plan,
)
from recupero_orchestrator.domain.strategy import outstanding
from recupero_runtime.db import Work

log = structlog.get_logger()

Uow = Work[OrchestratorRepository]
Row = dict[str, Any]

# Channels worked by people: a due step on one of them becomes a task in an agent's queue.
AGENT_CHANNELS = frozenset(
    {ContactChannel.AGENT_CALL, ContactChannel.FIELD_VISIT, ContactChannel.LEGAL_REFERRAL}
)
# The planner's own agent tasks (a reply, a broken promise, a high balance) are phone work.
PLANNER_TASK_CHANNEL = ContactChannel.AGENT_CALL
# A fixpoint is reached in a few rounds (each skip unlocks one step); this bounds a bad document.
_MAX_REPLAN_ROUNDS = 50

_DELIVERY_STATUS = {
    None: ActionStatus.SENT,
    "sent": ActionStatus.SENT,
    "delivered": ActionStatus.DELIVERED,
    "read": ActionStatus.READ,
    "failed": ActionStatus.FAILED,
}
_RECORD_STATUS = {
    "pending": ActionStatus.PLANNED,
    "dropped": ActionStatus.DROPPED,
    "skipped": ActionStatus.SKIPPED,
}
# Stored values to members, looked up without calling the enum (planning the day reads millions).
_KINDS = {kind.value: kind for kind in ActionKind}
_CHANNELS = {channel.value: channel for channel in ContactChannel}


def strategy_of(row: Row) -> StrategyDocument:
    """A stored version (validated when it was saved)."""
    return StrategyDocument.model_validate(row["document"])


async def current_strategy(uow: Uow, case: Row) -> StrategyDocument | None:
    if case["strategy_id"] is None:
        return None
    row = await uow.repo.strategy_version(
        case["tenant_id"], case["strategy_id"], case["strategy_version"]
    )
    return None if row is None else strategy_of(row)


async def balance_of(uow: Uow, case: Row) -> Money:
    paid = await uow.repo.payments_of(case["tenant_id"], case["debtor_id"], case["currency"])
    amount = outstanding(case["snapshot_balance_minor"], case["snapshot_as_of"], paid)
    return Money(amount_minor=amount, currency=case["currency"])


async def received_payments(uow: Uow, tenant_id: str, debtor_id: str) -> list[ReceivedPayment]:
    payments = []
    for currency in {row["currency"] for row in await uow.repo.promises_of(tenant_id, debtor_id)}:
        payments += [
            ReceivedPayment(Money(amount_minor=amount, currency=currency), at)
            for amount, at in await uow.repo.payments_of(tenant_id, debtor_id, currency)
        ]
    return payments


def _promise(row: Row) -> Promise:
    return Promise(
        row["promise_id"],
        Money(amount_minor=row["amount_minor"], currency=row["currency"]),
        row["promised_on"],
        row["registered_at"],
    )


def _record(row: Row) -> ActionRecord | None:
    """The planner's view of a stored action; cancelled ones are as if never proposed, so a
    paused strategy proposes them again when it resumes."""
    stored_status = row["status"]
    if stored_status == "cancelled":
        return None
    kind = _KINDS[row["kind"]]
    task = kind is ActionKind.AGENT_TASK
    if stored_status == "fired":
        status = ActionStatus.DONE if task else _DELIVERY_STATUS[row["delivery"]]
    else:
        status = _RECORD_STATUS[stored_status]
    return ActionRecord(
        row["action_key"],
        kind,
        status,
        row["due_at"],
        row["step_id"],
        row["round"],
        row["attempt"],
        None if task else _CHANNELS[row["channel"]],
        row["happened_at"],
    )


async def debtor_state(
    uow: Uow, case: Row, strategy: StrategyDocument, without_key: str | None = None
) -> DebtorState:
    tenant_id, debtor_id = case["tenant_id"], case["debtor_id"]
    contact = ContactDetails.model_validate(case["contact"])
    entered = case["segment_entered_at"]
    promise_rows = [
        row
        for row in await uow.repo.promises_of(tenant_id, debtor_id)
        # A promise judged before the debtor entered this segment belongs to the previous one.
        if row["status"] == "pending" or row["registered_at"] >= entered
    ]
    state = DebtorState(
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        segment=case["segment"],
        entered_segment_at=entered,
        time_zone=contact.time_zone,
        oldest_due_on=case["oldest_due_on"],
        days_past_due=case["days_past_due"],
        balance=await balance_of(uow, case),
        promises=tuple(_promise(row) for row in promise_rows),
        payments=tuple(await received_payments(uow, tenant_id, debtor_id)),
        replied_at=case["replied_at"],
    )
    rows = await uow.repo.strategy_actions(tenant_id, debtor_id, key_prefix(strategy, state))
    records = tuple(
        record
        for row in rows
        if row["action_key"] != without_key and (record := _record(row)) is not None
    )
    return replace(state, records=records)


def parse_contacts(cases: Iterable[Row]) -> None:
    """Turn each case's stored contact into `ContactDetails` once for a whole batch (and
    `ContactDetails.model_validate` passes an instance through). It is not validated again: the
    case stores it as dumped from a validated event, and checking the e-mail address anew for
    every use was the largest cost of firing a batch."""
    for case in cases:
        contact = case["contact"]
        if contact.get("postal_address") is not None:
            # `model_construct` leaves nested models as dicts: the address is built (validated:
            # a few fields, and only for debtors who have one).
            address = PostalAddress.model_validate(contact["postal_address"])
            contact = {**contact, "postal_address": address}
        case["contact"] = ContactDetails.model_construct(**contact)


def _country_and_zone(contact: ContactDetails | Row) -> tuple[str, str]:
    """Of a case's contact, as stored (planning the day reads no more of it, and does not pay for
    a model per debtor) or parsed (`parse_contacts`)."""
    if isinstance(contact, dict):
        return contact["country"], contact["time_zone"]
    return contact.country, contact.time_zone


def state_from_facts(
    case: Row, facts: dict[str, Any], records: tuple[ActionRecord, ...] = ()
) -> DebtorState:
    """What `debtor_state` reads query by query, from rows read for a whole batch of debtors
    (one query per table, grouped by debtor: `adapters.batches.debtor_facts`), with the
    `records` given (the caller picks them: they depend on the strategy's key prefix)."""
    key = (case["tenant_id"], case["debtor_id"])
    _, time_zone = _country_and_zone(case["contact"])
    entered = case["segment_entered_at"]
    promises: tuple[Promise, ...] = ()
    payments: tuple[ReceivedPayment, ...] = ()
    promise_rows = facts["promises"].get(key)
    if promise_rows:  # most debtors have none: nothing to build
        promises = tuple(
            _promise(row)
            for row in promise_rows
            if row["status"] == "pending" or row["registered_at"] >= entered
        )
        promised_currencies = {row["currency"] for row in promise_rows}
        payments = tuple(
            ReceivedPayment(
                Money(amount_minor=p["amount_minor"], currency=p["currency"]), p["received_at"]
            )
            for p in facts["payments"].get(key, ())
            if p["currency"] in promised_currencies
        )
    return DebtorState(
        case["tenant_id"],
        case["debtor_id"],
        case["segment"],
        entered,
        time_zone,
        case["oldest_due_on"],
        case["days_past_due"],
        balance_from_facts(case, facts),
        records,
        promises,
        payments,
        case["replied_at"],
    )


def balance_from_facts(case: Row, facts: dict[str, Any]) -> Money:
    """What `balance_of` reads, from the batch's payments."""
    payments = facts["payments"].get((case["tenant_id"], case["debtor_id"]))
    amount = case["snapshot_balance_minor"]
    if payments:
        paid = [
            (payment["amount_minor"], payment["received_at"])
            for payment in payments
            if payment["currency"] == case["currency"]
        ]
        amount = outstanding(amount, case["snapshot_as_of"], paid)
    return Money(amount_minor=amount, currency=case["currency"])


@lru_cache(maxsize=1024)
def _unrestricted_context(country: str, time_zone: str) -> DebtorContactContext:
    # Most debtors have no opt-out, authorisation or hold: they share one context a zone.
    return DebtorContactContext(country=country, time_zone=time_zone)


def contact_context_from_facts(
    case: Row, facts: dict[str, Any]
) -> tuple[DebtorContactContext, tuple[ContactRecord, ...]]:
    key = (case["tenant_id"], case["debtor_id"])
    country, time_zone = _country_and_zone(case["contact"])
    opt_outs = facts["opt_outs"].get(key)
    authorised = facts["authorised"].get(key)
    holds = facts["holds"].get(key)
    if opt_outs or authorised or holds:
        context = DebtorContactContext(
            country=country,
            time_zone=time_zone,
            opted_out_channels=frozenset(_CHANNELS[r["channel"]] for r in opt_outs or ()),
            authorised_channels=(
                None if not authorised else frozenset(_CHANNELS[r["channel"]] for r in authorised)
            ),
            holds=tuple(Hold(HoldKind(r["kind"]), r["since"], r["until"]) for r in holds or ()),
        )
    else:
        context = _unrestricted_context(country, time_zone)
    history = tuple(
        ContactRecord(r["contacted_at"], _CHANNELS[r["channel"]], r["conversation"])
        for r in facts["contacts"].get(key, ())
    )
    if len(history) > 1:
        history = tuple(sorted(history, key=lambda record: (record.at, record.channel.value)))
    return context, history


def _step_channel(strategy: StrategyDocument, action: PlannedAction) -> ContactChannel:
    if action.channel is not None:
        return action.channel
    if action.kind is ActionKind.AGENT_TASK:
        return PLANNER_TASK_CHANNEL
    assert action.step_id is not None  # the planner names the step of every step's action
    return compiled(strategy).channels[action.step_id]


async def replan(uow: Uow, tenant_id: str, debtor_id: str, now: datetime) -> Plan | None:
    """Plan the debtor's strategy again and store what changed; None when it follows none."""
    case = await uow.repo.case_for_update(tenant_id, debtor_id)
    if case is None or case["status"] != "open":
        return None
    strategy = await current_strategy(uow, case)
    if strategy is None:
        return None
    result: Plan | None = None
    for _ in range(_MAX_REPLAN_ROUNDS):
        state = await debtor_state(uow, case, strategy)
        result = plan(strategy, state, now)
        changed = False
        for action in result.actions:
            changed |= await _store(uow, case, strategy, action, now)
        if result.status is not PlanStatus.ACTIVE:
            prefix = key_prefix(strategy, state)
            for row in await uow.repo.cancel_pending_of_run(
                tenant_id, debtor_id, prefix, result.reason
            ):
                await uow.repo.record_decision(
                    decision_values(
                        row, f"strategy.{result.status.value}", "cancelled", result.reason, now
                    )
                )
        if not changed:
            break
    assert result is not None
    await uow.repo.set_plan_status(tenant_id, debtor_id, result.status.value, result.reason)
    return result


async def _store(
    uow: Uow, case: Row, strategy: StrategyDocument, action: PlannedAction, now: datetime
) -> bool:
    """Store one proposal; True when the stored schedule changed."""
    channel = _step_channel(strategy, action)
    status = {ActionKind.CONTACT: "pending", ActionKind.SKIP: "skipped"}.get(action.kind, "fired")
    happened = None if action.kind is ActionKind.CONTACT else now
    row = await uow.repo.propose(
        {
            "tenant_id": case["tenant_id"],
            "debtor_id": case["debtor_id"],
            "action_key": action.key,
            "kind": action.kind.value,
            "strategy": f"{strategy.reference}/{action.step_id or 'task'}",
            "step_id": action.step_id,
            "round": action.round,
            "attempt": action.attempt,
            "channel": channel.value,
            "template": action.template,
            "due_at": action.due_at,
            "expires_at": action.expires_at,
            "planned_at": now,
            "status": status,
            "status_reason": None if action.kind is ActionKind.CONTACT else action.reason,
            "happened_at": happened,
            "fired_at": now if status == "fired" else None,
        }
    )
    if row is None:
        return False
    if action.kind is ActionKind.SKIP:
        await uow.repo.record_decision(
            decision_values(row, "strategy.step-skipped", "skipped", action.reason, now)
        )
    elif action.kind is ActionKind.AGENT_TASK:
        await _create_task(uow, case, row, action.reason, now)
    return True


async def _create_task(uow: Uow, case: Row, row: Row, reason: str, now: datetime) -> None:
    balance = await balance_of(uow, case)
    await uow.repo.create_agent_task(agent_task(case, row, reason, balance, now))


def agent_task(case: Row, row: Row, reason: str, balance: Money, now: datetime) -> Row:
    """The task an agent's queue gets for a due action of the debtor's case."""
    return {
        "tenant_id": case["tenant_id"],
        "debtor_id": case["debtor_id"],
        "action_id": row["action_id"],
        "queue": case["stage"],
        "skill": row["channel"],
        "zone": case["zone"],
        "priority": task_priority(balance.amount_minor, case["propensity_score"]),
        "template": row["template"],
        "reason": reason,
        "created_at": now,
    }


def decision_values(
    row: Row,
    rule_id: str,
    verdict: str,
    reason: str,
    now: datetime,
    decision: Decision | None = None,
) -> Row:
    """The recorded decision about an action: what was decided, by which rule, and why."""
    return {
        "tenant_id": row["tenant_id"],
        "debtor_id": row["debtor_id"],
        "action_id": row["action_id"],
        "action_key": row["action_key"],
        "channel": row["channel"],
        "verdict": verdict,
        "rule_id": rule_id,
        "reason": reason,
        "trail": [
            {"rule_id": hit.rule_id, "reason": hit.reason}
            for hit in (decision.trail if decision else ())
        ],
        "policy_id": decision.policy_id if decision else None,
        "requested_at": decision.requested_at if decision else row["due_at"],
        "moved_to": decision.at if decision and decision.verdict is Verdict.MOVED else None,
        "decided_at": now,
    }


async def contact_policy_for(uow: Uow, tenant_id: str, country: str) -> ContactPolicy:
    default = default_policy_for(country)
    override = await uow.repo.policy_override(tenant_id, country)
    if override is None:
        return default
    return tighten(default, TenantPolicyOverride.model_validate(override), tenant_id)


class ContactPolicies:
    """Contact policies per tenant and country, and decisions for identical situations: debtors in
    the same zone with the same restrictions and history get the same answer for the same step."""

    def __init__(self, uow: Uow, now: datetime) -> None:
        self._uow = uow
        self._now = now
        self._policies: dict[tuple[str, str], ContactPolicy] = {}
        self._decisions: dict[tuple[Any, ...], Decision] = {}

    async def policy(self, tenant_id: str, country: str) -> ContactPolicy:
        key = (tenant_id, country)
        if key not in self._policies:
            self._policies[key] = await contact_policy_for(self._uow, tenant_id, country)
        return self._policies[key]

    def decide(
        self,
        policy: ContactPolicy,
        action: ProposedAction,
        context: DebtorContactContext,
        history: tuple[ContactRecord, ...],
    ) -> Decision:
        # What `decide` depends on: the requested instant (not the planned one, when that has
        # passed), and only the contacts that still count then.
        relevant = relevant_history(action, context, history, self._now, policy=policy)
        requested = max(action.at, self._now)
        key = (id(policy), action.channel, requested, action.expires_at, context, relevant)
        decision = self._decisions.get(key)
        if decision is None:
            decision = decide(action, context, history, self._now, policy=policy)
            self._decisions[key] = decision
        return decision


async def _contact_context(uow: Uow, case: Row) -> tuple[DebtorContactContext, list[ContactRecord]]:
    tenant_id, debtor_id = case["tenant_id"], case["debtor_id"]
    contact = ContactDetails.model_validate(case["contact"])
    restrictions = await uow.repo.contact_restrictions(tenant_id, debtor_id)
    authorised = restrictions["authorised"]
    context = DebtorContactContext(
        country=contact.country,
        time_zone=contact.time_zone,
        opted_out_channels=frozenset(ContactChannel(c) for c in restrictions["opted_out"]),
        authorised_channels=(
            None if authorised is None else frozenset(ContactChannel(c) for c in authorised)
        ),
        holds=tuple(
            Hold(HoldKind(hold["kind"]), hold["since"], hold["until"])
            for hold in restrictions["holds"]
        ),
    )
    history = [
        ContactRecord(row["contacted_at"], ContactChannel(row["channel"]), row["conversation"])
        for row in await uow.repo.contacts_of(tenant_id, debtor_id)
    ]
    return context, history


async def fire_strategy_action(uow: Uow, row: Row, now: datetime) -> bool:
    """Judge one due strategy action; True when it went out (as `action-due` or an agent task)."""
    tenant_id, debtor_id = row["tenant_id"], row["debtor_id"]
    # Earlier actions of the same debtor in this batch may have re-planned this one already.
    fresh = await uow.repo.action(tenant_id, row["action_id"])
    if fresh is None or fresh["status"] != "pending" or fresh["due_at"] > now:
        return False
    row = fresh
    case = await uow.repo.case_for_update(tenant_id, debtor_id)
    strategy = None if case is None else await current_strategy(uow, case)
    if case is None or strategy is None or case["status"] != "open":
        await uow.repo.settle_action(row["action_id"], "cancelled", now, "the case is closed")
        return False
    state = await debtor_state(uow, case, strategy, without_key=row["action_key"])
    again = plan(strategy, state, now)
    proposal = next((a for a in again.actions if a.key == row["action_key"]), None)
    fired = False
    if proposal is None or proposal.kind is ActionKind.AGENT_TASK:
        reason = f"no longer proposed: {again.reason}"
        await uow.repo.settle_action(row["action_id"], "cancelled", now, reason)
        await uow.repo.record_decision(
            decision_values(row, f"strategy.{again.status.value}", "cancelled", reason, now)
        )
    elif proposal.due_at > now:
        # What it is timed from happened later than first thought (the message was sent after
        # the action was planned): it waits for its new time.
        await uow.repo.reschedule(row["action_id"], proposal.due_at)
    elif proposal.kind is ActionKind.SKIP:
        await uow.repo.settle_action(row["action_id"], "skipped", now, proposal.reason)
        await uow.repo.record_decision(
            decision_values(row, "strategy.step-skipped", "skipped", proposal.reason, now)
        )
    else:
        fired = await _decide_and_fire(uow, case, row, now)
    await replan(uow, tenant_id, debtor_id, now)
    return fired


async def fire_default_action(uow: Uow, row: Row, now: datetime) -> bool:
    """Judge one due reminder of the default plan (a debtor whose segment has no strategy): the
    same contact policy as any strategy step allows, moves or drops it. `row` is a claimed action
    with its case's columns (see `firing.fire_batch`)."""
    return await _decide_and_fire(uow, row, row, now)


async def _decide_and_fire(uow: Uow, case: Row, row: Row, now: datetime) -> bool:
    channel = ContactChannel(row["channel"])
    context, history = await _contact_context(uow, case)
    policy = await contact_policy_for(uow, case["tenant_id"], context.country)
    decision = decide(
        ProposedAction(channel, row["due_at"], row["expires_at"]),
        context,
        history,
        now,
        policy=policy,
    )
    await uow.repo.record_decision(
        decision_values(
            row, decision.rule_id, decision.verdict.value, decision.reason, now, decision
        )
    )
    if decision.verdict is Verdict.DROPPED:
        await uow.repo.settle_action(row["action_id"], "dropped", now, decision.reason)
        return False
    if decision.verdict is Verdict.MOVED:
        assert decision.at is not None
        await uow.repo.reschedule(row["action_id"], decision.at)
        return False
    await uow.repo.settle_action(row["action_id"], "fired", now)
    published = published_channel(channel)
    if channel in AGENT_CHANNELS or published is None:
        await _create_task(uow, case, row, f"strategy step {row['step_id']!r} is agents' work", now)
        return True
    if channel in CONTACT_CHANNELS:
        await uow.repo.record_contact(
            case["tenant_id"], case["debtor_id"], channel.value, now, False, row["action_id"]
        )
    uow.publish(action_due(case, row, published, await balance_of(uow, case)))
    return True


def action_due(case: Row, row: Row, channel: Channel, balance: Money) -> ActionDue:
    """The `action-due` of an action that fired: what the notifier needs to contact the debtor."""
    return ActionDue(
        tenant_id=case["tenant_id"],
        debtor_id=case["debtor_id"],
        action_id=row["action_id"],
        channel=channel,
        template=row["template"],
        strategy=row["strategy"],
        scheduled_for=row["due_at"],
        contact=ContactDetails.model_validate(case["contact"]),
        balance=balance,
        days_past_due=case["days_past_due"],
        oldest_due_on=case["oldest_due_on"],
    )


# --- Promises -------------------------------------------------------------------------------------


async def register_promise(uow: Uow, event: PromiseRegistered, now: datetime) -> None:
    """Store the promise (judged at its deadline) and pause the debtor's strategy."""
    case = await uow.repo.case_for_update(event.tenant_id, event.debtor_id)
    strategy = None if case is None else await current_strategy(uow, case)
    grace = strategy.reactions.promise_grace_days if strategy else DEFAULT_GRACE_DAYS
    time_zone = "UTC" if case is None else ContactDetails.model_validate(case["contact"]).time_zone
    promise = Promise(event.promise_id, event.amount, event.promised_on, event.registered_at)
    deadline = promise_deadline(promise, time_zone, grace)
    strategy_id = strategy.strategy_id if strategy else None
    if await uow.repo.record_promise(event, deadline, strategy_id):
        await resolve_promises(uow, event.tenant_id, event.debtor_id, now, due_only=False)
        await replan(uow, event.tenant_id, event.debtor_id, now)


async def resolve_promises(
    uow: Uow, tenant_id: str, debtor_id: str, now: datetime, *, due_only: bool
) -> None:
    """Judge the debtor's pending promises; publish `promise-resolved` for each that ended.

    With `due_only`, only promises past their deadline (the scheduler); otherwise any that the
    payments already keep (a payment arrived).
    """
    case = await uow.repo.case_for_update(tenant_id, debtor_id)
    time_zone = "UTC" if case is None else ContactDetails.model_validate(case["contact"]).time_zone
    payments = await received_payments(uow, tenant_id, debtor_id)
    for row in await uow.repo.promises_of(tenant_id, debtor_id):
        if row["status"] != "pending" or (due_only and row["deadline"] > now):
            continue
        promise = _promise(row)
        # The grace the promise got when it was made (the strategy may have changed since).
        without_grace = promise_deadline(promise, time_zone, 0)
        grace = round((row["deadline"] - without_grace).total_seconds() / 86_400)
        judged = evaluate_promise(
            promise, payments, time_zone=time_zone, grace_days=max(grace, 0), now=now
        )
        if judged.outcome is PromiseOutcome.PENDING:
            continue
        await uow.repo.resolve_promise(
            tenant_id, promise.promise_id, judged.outcome.value, judged.paid.amount_minor, now
        )
        uow.publish(
            PromiseResolved(
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                promise_id=promise.promise_id,
                outcome=PublishedOutcome(judged.outcome.value),
                promised=promise.amount,
                paid=judged.paid,
                promised_on=promise.promised_on,
                deadline=judged.deadline,
                resolved_at=now,
                reason=judged.reason,
            )
        )


async def resolve_due_promises(uow: Uow, now: datetime, limit: int) -> int:
    """The scheduler's share of promises: those whose deadline passed are judged, and the
    strategy resumes or escalates."""
    due = await uow.repo.claim_due_promises(now, limit)
    debtors = {(row["tenant_id"], row["debtor_id"]) for row in due}
    for tenant_id, debtor_id in sorted(debtors):
        await resolve_promises(uow, tenant_id, debtor_id, now, due_only=True)
        await replan(uow, tenant_id, debtor_id, now)
    return len(due)

"""Planning the day for every open case: the same planner and contact policy as `planning.replan`,
a chunk of debtors at a time.

Per chunk: the cases are locked (SKIP LOCKED), everything the planner needs is read in one query per
table, each debtor is planned in memory until nothing changes (a skipped step unlocks the next), and
contact proposals due within the horizon are placed on their first allowed slot by the contact
policy. The new rows go in with COPY and one `INSERT ... SELECT`. The rare debtor whose plan does
more than add rows (an agent task, a paused or stopped strategy with actions to cancel, a cancelled
action coming back) is handed to `planning.replan` in the same transaction, so both paths agree.
Firing still judges every action again at its time.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from recupero_events import ContactDetails, Money
from recupero_orchestrator import planning
from recupero_orchestrator.adapters import day_plan as bulk
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.channels import ContactChannel
from recupero_orchestrator.domain.contact_policy import (
    ContactPolicy,
    ContactRecord,
    DebtorContactContext,
    Decision,
    Hold,
    HoldKind,
    ProposedAction,
    Verdict,
    decide,
)
from recupero_orchestrator.domain.promises import ReceivedPayment
from recupero_orchestrator.domain.strategies import (
    ActionKind,
    ActionRecord,
    ActionStatus,
    DebtorState,
    PlanStatus,
    StrategyDocument,
    key_prefix,
    plan,
)
from recupero_orchestrator.domain.strategy import outstanding
from recupero_runtime.db import asyncpg_connection
from recupero_runtime.service import Service

Row = dict[str, Any]
_MAX_ROUNDS = 50


@dataclass
class DayPlanReport:
    debtors: int = 0
    actions: int = 0
    skipped: int = 0
    moved: int = 0
    replanned: int = 0


@dataclass
class _Chunk:
    """What one chunk writes."""

    schedule: list[tuple[Any, ...]]
    decisions: list[tuple[Any, ...]]
    statuses: list[tuple[str, str, str, str]]
    replan: list[tuple[str, str]]


class _Policies:
    """Contact policies per tenant and country, and decisions for identical situations: debtors in
    the same zone with the same restrictions and history get the same answer for the same step."""

    def __init__(self, uow: planning.Uow, now: datetime) -> None:
        self._uow = uow
        self._now = now
        self._policies: dict[tuple[str, str], ContactPolicy] = {}
        self._decisions: dict[tuple[Any, ...], Decision] = {}

    async def policy(self, tenant_id: str, country: str) -> ContactPolicy:
        key = (tenant_id, country)
        if key not in self._policies:
            self._policies[key] = await planning.contact_policy_for(self._uow, tenant_id, country)
        return self._policies[key]

    def decide(
        self,
        policy: ContactPolicy,
        action: ProposedAction,
        context: DebtorContactContext,
        history: tuple[ContactRecord, ...],
    ) -> Decision:
        key = (id(policy), action, context, history)
        decision = self._decisions.get(key)
        if decision is None:
            decision = decide(action, context, history, self._now, policy=policy)
            self._decisions[key] = decision
        return decision


async def plan_day(
    service: Service[OrchestratorRepository],
    now: datetime,
    *,
    horizon: timedelta = timedelta(days=1),
    chunk_size: int = 10_000,
) -> DayPlanReport:
    """Plan every open case on a strategy; contact steps due before `now + horizon` are placed
    where the contact policy allows them. Each chunk commits on its own."""
    report = DayPlanReport()
    strategies: dict[tuple[str, str, int], StrategyDocument] = {}
    after = ("", "")
    while True:
        async with service.unit_of_work() as uow:
            connection = await asyncpg_connection(uow.session)
            cases = await bulk.lock_open_cases(connection, after, chunk_size)
            if not cases:
                break
            after = (cases[-1]["tenant_id"], cases[-1]["debtor_id"])
            keys = [(case["tenant_id"], case["debtor_id"]) for case in cases]
            facts = await bulk.debtor_facts(connection, keys)
            policies = _Policies(uow, now)
            chunk = _Chunk([], [], [], [])
            for case in cases:
                reference = (case["tenant_id"], case["strategy_id"], case["strategy_version"])
                if reference not in strategies:
                    strategy = await planning.current_strategy(uow, case)
                    if strategy is None:
                        continue
                    strategies[reference] = strategy
                await _plan_debtor(
                    case, strategies[reference], facts, policies, now, now + horizon, chunk, report
                )
            report.actions += await bulk.write_plan(
                connection, chunk.schedule, chunk.decisions, chunk.statuses
            )
            for tenant_id, debtor_id in chunk.replan:
                await planning.replan(uow, tenant_id, debtor_id, now)
            report.replanned += len(chunk.replan)
            report.debtors += len(cases)
            await uow.commit()
    return report


def _state(case: Row, facts: dict[str, Any]) -> DebtorState:
    """What `planning.debtor_state` reads query by query, from the chunk's rows."""
    key = (case["tenant_id"], case["debtor_id"])
    contact = ContactDetails.model_validate(case["contact"])
    entered = case["segment_entered_at"]
    payments = facts["payments"].get(key, [])
    paid = [
        (p["amount_minor"], p["received_at"]) for p in payments if p["currency"] == case["currency"]
    ]
    promises = [
        row
        for row in facts["promises"].get(key, [])
        if row["status"] == "pending" or row["registered_at"] >= entered
    ]
    promised_currencies = {row["currency"] for row in facts["promises"].get(key, [])}
    return DebtorState(
        tenant_id=case["tenant_id"],
        debtor_id=case["debtor_id"],
        segment=case["segment"],
        entered_segment_at=entered,
        time_zone=contact.time_zone,
        oldest_due_on=case["oldest_due_on"],
        days_past_due=case["days_past_due"],
        balance=Money(
            amount_minor=outstanding(case["snapshot_balance_minor"], case["snapshot_as_of"], paid),
            currency=case["currency"],
        ),
        promises=tuple(planning._promise(row) for row in promises),
        payments=tuple(
            ReceivedPayment(
                Money(amount_minor=p["amount_minor"], currency=p["currency"]), p["received_at"]
            )
            for p in payments
            if p["currency"] in promised_currencies
        ),
        replied_at=case["replied_at"],
    )


def _context(
    case: Row, facts: dict[str, Any]
) -> tuple[DebtorContactContext, tuple[ContactRecord, ...]]:
    key = (case["tenant_id"], case["debtor_id"])
    contact = ContactDetails.model_validate(case["contact"])
    authorised = facts["authorised"].get(key)
    context = DebtorContactContext(
        country=contact.country,
        time_zone=contact.time_zone,
        opted_out_channels=frozenset(
            ContactChannel(r["channel"]) for r in facts["opt_outs"].get(key, [])
        ),
        authorised_channels=(
            None if not authorised else frozenset(ContactChannel(r["channel"]) for r in authorised)
        ),
        holds=tuple(
            Hold(HoldKind(r["kind"]), r["since"], r["until"]) for r in facts["holds"].get(key, [])
        ),
    )
    history = tuple(
        sorted(
            (
                ContactRecord(r["contacted_at"], ContactChannel(r["channel"]), r["conversation"])
                for r in facts["contacts"].get(key, [])
            ),
            key=lambda record: (record.at, record.channel.value),
        )
    )
    return context, history


async def _plan_debtor(
    case: Row,
    strategy: StrategyDocument,
    facts: dict[str, Any],
    policies: _Policies,
    now: datetime,
    until: datetime,
    chunk: _Chunk,
    report: DayPlanReport,
) -> None:
    tenant_id, debtor_id = case["tenant_id"], case["debtor_id"]
    state = _state(case, facts)
    prefix = key_prefix(strategy, state)
    stored = {
        row["action_key"]: row
        for row in facts["actions"].get((tenant_id, debtor_id), [])
        if row["action_key"].startswith(prefix + "/")
    }
    records = [record for row in stored.values() if (record := planning._record(row)) is not None]
    new_rows: list[tuple[Any, ...]] = []
    new_decisions: list[tuple[Any, ...]] = []
    contact_context: tuple[DebtorContactContext, tuple[ContactRecord, ...]] | None = None
    for _ in range(_MAX_ROUNDS):
        result = plan(strategy, replace(state, records=tuple(records)), now)
        changed = False
        for action in result.actions:
            row = stored.get(action.key)
            if row is not None and row["status"] == "pending" and action.kind is ActionKind.CONTACT:
                continue  # already planned: nothing changes
            if row is not None or action.kind not in (ActionKind.CONTACT, ActionKind.SKIP):
                chunk.replan.append((tenant_id, debtor_id))
                return
            action_id = uuid4()
            channel = planning._step_channel(strategy, action)
            due_at, status, reason, happened = action.due_at, "pending", None, None
            if action.kind is ActionKind.SKIP:
                status, reason, happened = "skipped", action.reason, now
                new_decisions.append(
                    (
                        uuid4(),
                        tenant_id,
                        debtor_id,
                        action_id,
                        action.key,
                        channel.value,
                        "skipped",
                        "strategy.step-skipped",
                        action.reason,
                        action.due_at,
                        now,
                    )
                )
                report.skipped += 1
            elif action.due_at < until:
                if contact_context is None:
                    contact_context = _context(case, facts)
                context, history = contact_context
                policy = await policies.policy(tenant_id, context.country)
                decision = policies.decide(
                    policy,
                    ProposedAction(channel, action.due_at, action.expires_at),
                    context,
                    history,
                )
                if decision.verdict is Verdict.MOVED and decision.at is not None:
                    due_at = decision.at
                    report.moved += 1
            new_rows.append(
                (
                    action_id,
                    tenant_id,
                    debtor_id,
                    action.key,
                    action.kind.value,
                    f"{strategy.reference}/{action.step_id or 'task'}",
                    action.step_id,
                    action.round,
                    action.attempt,
                    channel.value,
                    action.template,
                    due_at,
                    action.expires_at,
                    now,
                    status,
                    reason,
                    happened,
                )
            )
            stored[action.key] = {"status": status}
            records.append(
                ActionRecord(
                    key=action.key,
                    kind=action.kind,
                    status=ActionStatus.SKIPPED if status == "skipped" else ActionStatus.PLANNED,
                    planned_for=due_at,
                    step_id=action.step_id,
                    round=action.round,
                    attempt=action.attempt,
                    channel=channel,
                    happened_at=happened,
                )
            )
            changed = True
        if result.status is not PlanStatus.ACTIVE and any(
            row["status"] == "pending" for row in stored.values()
        ):
            chunk.replan.append((tenant_id, debtor_id))
            return
        if not changed:
            break
    chunk.schedule += new_rows
    chunk.decisions += new_decisions
    if (case["plan_status"], case["plan_reason"]) != (result.status.value, result.reason):
        chunk.statuses.append((tenant_id, debtor_id, result.status.value, result.reason))

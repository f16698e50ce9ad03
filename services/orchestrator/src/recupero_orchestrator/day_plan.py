"""Planning the day for every open case: the same planner and contact policy as `planning.replan`,
a chunk of debtors at a time.

Per chunk: the cases are locked (SKIP LOCKED), everything the planner needs is read in one query per
table, each debtor is planned in memory until nothing changes (a skipped step unlocks the next), and
contact proposals due within the horizon are placed on their first allowed slot by the contact
policy (the move recorded as a decision, with its rule). The new rows go in with COPY and one `INSERT ... SELECT`. The rare debtor whose plan does
more than add rows (an agent task, a paused or stopped strategy with actions to cancel, a cancelled
action coming back) is handed to `planning.replan` in the same transaction, so both paths agree.
Firing still judges every action again at its time.
"""

import asyncio
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from recupero_orchestrator import planning
from recupero_orchestrator.adapters import batches as bulk
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.contact_policy import (
    ContactRecord,
    DebtorContactContext,
    ProposedAction,
    Verdict,
)
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
from recupero_runtime.db import asyncpg_connection
from recupero_runtime.service import Service

Row = dict[str, Any]
_MAX_ROUNDS = 50


class Pacer:
    """Gives the event loop back every millisecond of work on a batch (planning and judging
    in memory is CPU work with no I/O): a consumer sharing the loop, such as a payment that must
    cancel a debtor's actions at once, waits that long between its queries, not a whole batch."""

    def __init__(self, slice_seconds: float = 0.001) -> None:
        self._slice = slice_seconds
        self._since = time.perf_counter()

    async def pause(self) -> None:
        if time.perf_counter() - self._since >= self._slice:
            await asyncio.sleep(0)
            self._since = time.perf_counter()


@dataclass
class DayPlanReport:
    debtors: int = 0
    actions: int = 0
    skipped: int = 0
    moved: int = 0
    replanned: int = 0


@dataclass
class PlanWrites:
    """What planning a batch of debtors in memory writes: new schedule rows (`SCHEDULE_COLUMNS`),
    the decisions about them (skipped, moved; `planning.decision_values`), changed plan statuses,
    and the debtors to hand to `planning.replan` because their plan does more than add rows."""

    schedule: list[tuple[Any, ...]] = field(default_factory=list)
    decisions: list[Row] = field(default_factory=list)
    statuses: list[tuple[str, str, str, str]] = field(default_factory=list)
    replan: list[tuple[str, str]] = field(default_factory=list)


async def plan_day(
    service: Service[OrchestratorRepository],
    now: datetime,
    *,
    horizon: timedelta = timedelta(days=1),
    chunk_size: int = 10_000,
    tenant_id: str | None = None,
) -> DayPlanReport:
    """Plan every open case on a strategy (of one tenant, if given); contact steps due before
    `now + horizon` are placed where the contact policy allows them. Each chunk commits on its
    own; its cases stay locked until then, so a payment for one of them waits for the chunk."""
    report = DayPlanReport()
    pacer = Pacer()
    strategies: dict[tuple[str, str, int], StrategyDocument] = {}
    after = ("", "")
    while True:
        async with service.unit_of_work() as uow:
            connection = await asyncpg_connection(uow.session)
            cases = await bulk.lock_open_cases(connection, after, chunk_size, tenant_id)
            if not cases:
                break
            after = (cases[-1]["tenant_id"], cases[-1]["debtor_id"])
            keys = [(case["tenant_id"], case["debtor_id"]) for case in cases]
            facts = await bulk.debtor_facts(connection, keys)
            planning.parse_contacts(cases)
            policies = planning.ContactPolicies(uow, now)
            chunk = PlanWrites()
            for case in cases:
                await pacer.pause()
                reference = (case["tenant_id"], case["strategy_id"], case["strategy_version"])
                if reference not in strategies:
                    strategy = await planning.current_strategy(uow, case)
                    if strategy is None:
                        continue
                    strategies[reference] = strategy
                await plan_debtor(
                    case, strategies[reference], facts, policies, now, now + horizon, chunk, report
                )
            report.actions += await bulk.write_plan(connection, chunk.schedule, chunk.statuses)
            await bulk.insert_decisions(connection, chunk.decisions)
            for tenant, debtor_id in chunk.replan:
                await planning.replan(uow, tenant, debtor_id, now)
            report.replanned += len(chunk.replan)
            report.debtors += len(cases)
            await uow.commit()
    return report


async def plan_debtor(
    case: Row,
    strategy: StrategyDocument,
    facts: dict[str, Any],
    policies: planning.ContactPolicies,
    now: datetime,
    until: datetime | None,
    chunk: PlanWrites,
    report: DayPlanReport,
    state: DebtorState | None = None,
) -> None:
    """`planning.replan` in memory on the batch's `facts`, adding to `chunk` what it writes. With
    `until`, contact steps due before it are placed on the contact policy's first allowed slot;
    without, they keep the planner's time (as `replan` stores them). `state` is the debtor's as
    `planning.state_from_facts` reads it, when the caller has it already."""
    tenant_id, debtor_id = case["tenant_id"], case["debtor_id"]
    state = state or planning.state_from_facts(case, facts)
    prefix = key_prefix(strategy, state)
    stored = {
        row["action_key"]: row
        for row in facts["actions"].get((tenant_id, debtor_id), [])
        if row["action_key"].startswith(prefix + "/")
    }
    records = [record for row in stored.values() if (record := planning._record(row)) is not None]
    new_rows: list[tuple[Any, ...]] = []
    new_decisions: list[Row] = []
    contact_context: tuple[DebtorContactContext, tuple[ContactRecord, ...]] | None = None
    for _ in range(_MAX_ROUNDS):
        result = plan(strategy, replace(state, records=tuple(records)), now)
        unlocked = False
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
            decided = {
                "tenant_id": tenant_id,
                "debtor_id": debtor_id,
                "action_id": action_id,
                "action_key": action.key,
                "channel": channel.value,
                "due_at": action.due_at,
            }
            if action.kind is ActionKind.SKIP:
                status, reason, happened = "skipped", action.reason, now
                new_decisions.append(
                    planning.decision_values(
                        decided, "strategy.step-skipped", "skipped", action.reason, now
                    )
                )
                report.skipped += 1
            elif until is not None and action.due_at < until:
                if contact_context is None:
                    contact_context = planning.contact_context_from_facts(case, facts)
                context, history = contact_context
                policy = await policies.policy(tenant_id, context.country)
                decision = policies.decide(
                    policy,
                    ProposedAction(channel, action.due_at, action.expires_at),
                    context,
                    history,
                )
                if decision.verdict is Verdict.MOVED and decision.at is not None:
                    # Recorded with its rule, as firing would: a supervisor sees why it waits.
                    due_at = decision.at
                    new_decisions.append(
                        planning.decision_values(
                            decided, decision.rule_id, "moved", decision.reason, now, decision
                        )
                    )
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
            unlocked |= action.kind is ActionKind.SKIP
        if result.status is not PlanStatus.ACTIVE and any(
            row["status"] == "pending" for row in stored.values()
        ):
            chunk.replan.append((tenant_id, debtor_id))
            return
        # Only a skipped step unlocks the next one: a new pending contact holds its step, so
        # another round would propose nothing new (`replan` runs it and finds nothing).
        if not unlocked:
            break
    chunk.schedule += new_rows
    chunk.decisions += new_decisions
    if (case["plan_status"], case["plan_reason"]) != (result.status.value, result.reason):
        chunk.statuses.append((tenant_id, debtor_id, result.status.value, result.reason))

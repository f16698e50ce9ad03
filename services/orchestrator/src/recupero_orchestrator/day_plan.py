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
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from recupero_orchestrator import planning
from recupero_orchestrator.adapters import batches as bulk
from recupero_orchestrator.adapters import day_plans as runs
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.channels import ContactChannel
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
    PlannedAction,
    PlanStatus,
    StrategyDocument,
    compiled,
    entry_key_prefix,
    plan,
)
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.db import UnitOfWork, asyncpg_connection, prepare_bulk_transaction
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
    # The runs planned (`adapters.day_plans`); their parts hold these counts as they grow.
    runs: list[UUID] = field(default_factory=list)


_UUID_VERSION_BITS = (0xF << 76) | (0x3 << 62)
_UUID_VERSION_4 = (0x4 << 76) | (0x2 << 62)  # version 4, RFC 4122 variant


def random_ids(batch: int = 1024) -> Iterator[UUID]:
    """Random (version 4) UUIDs, as `uuid4` makes them, from one `os.urandom` call a batch
    rather than one an id (`uuid4` was 4-5% of planning a debtor). Not to be shared
    across a fork: the child would repeat the parent's batch."""
    while True:
        data = os.urandom(16 * batch)
        for offset in range(0, 16 * batch, 16):
            value = int.from_bytes(data[offset : offset + 16])
            yield UUID(int=(value & ~_UUID_VERSION_BITS) | _UUID_VERSION_4)


@dataclass
class PlanWrites:
    """What planning a batch of debtors in memory writes: new schedule rows (`SCHEDULE_COLUMNS`),
    the decisions about them (skipped, moved; `planning.decision_values`), changed plan statuses,
    and the debtors to hand to `planning.replan` because their plan does more than add rows."""

    schedule: list[tuple[Any, ...]] = field(default_factory=list)
    decisions: list[Row] = field(default_factory=list)
    statuses: list[tuple[str, str, str, str]] = field(default_factory=list)
    replan: list[tuple[str, str]] = field(default_factory=list)
    # The new rows' action ids.
    ids: Iterator[UUID] = field(default_factory=random_ids)


async def plan_day(
    service: Service[OrchestratorRepository],
    now: datetime,
    *,
    horizon: timedelta = timedelta(days=1),
    chunk_size: int = 10_000,
    tenant_id: str | None = None,
    on_request: bool = False,
    parts: int = 1,
    processes: int = 1,
) -> DayPlanReport:
    """Plan every open case on a strategy (of one tenant, if given); contact steps due before
    `now + horizon` are placed where the contact policy allows them.

    The daily run (a tenant's first of the UTC day) is recorded: once it has finished, planning
    the same day again does nothing, and a run that was interrupted resumes after its last
    committed chunk. `on_request` starts a new run of the tenant's day whatever ran before.
    Each run's debtors are split into `parts` disjoint key ranges, planned by `processes`
    processes at once (this one and more started for the run). Each chunk commits on its own,
    with its part's cursor; its cases stay locked until then, so a payment for one of them waits
    for the chunk. Then the schedule's statistics are refreshed (`batches.analyze_schedule`).
    Returns what the runs planned (an interrupted run's earlier chunks included)."""
    async with service.unit_of_work() as uow:
        connection = await _bulk_transaction(uow)
        if on_request:
            assert tenant_id is not None, "a run on request plans one tenant's day"
            run = await runs.start_run(connection, tenant_id, now.date(), "request", now, parts)
            run_ids = [] if run is None else [run]
        else:
            tenants = (
                [tenant_id]
                if tenant_id is not None
                else await runs.tenants_with_open_cases(connection)
            )
            for tenant in tenants:
                await runs.start_run(connection, tenant, now.date(), "daily", now, parts)
            run_ids = await runs.unfinished_runs(connection, now.date(), tenant_id)
        await uow.commit()
    if run_ids:
        settings = service.settings
        assert isinstance(settings, OrchestratorSettings)
        helpers = [
            _in_process(_PartsJob(settings, run_ids, now, horizon, chunk_size, first))
            for first in range(1, processes)
        ]
        await asyncio.gather(
            plan_parts(service, run_ids, now, horizon=horizon, chunk_size=chunk_size), *helpers
        )
        async with service.unit_of_work() as uow:
            await bulk.analyze_schedule(await asyncpg_connection(uow.session))
            await uow.commit()
    return await report_of(service, run_ids)


async def report_of(service: Service[OrchestratorRepository], run_ids: list[UUID]) -> DayPlanReport:
    report = DayPlanReport(runs=list(run_ids))
    if not run_ids:
        return report
    async with service.unit_of_work() as uow:
        progress = await runs.runs_progress(await asyncpg_connection(uow.session), run_ids, None)
    for run in progress:
        for name in ("debtors", "actions", "skipped", "moved", "replanned"):
            setattr(report, name, getattr(report, name) + run[name])
    return report


async def day_plan_runs(
    service: Service[OrchestratorRepository], tenant_id: str, run_id: UUID | None = None
) -> list[Row]:
    """The tenant's runs (or one of them), newest first, with what their parts planned so far."""
    async with service.unit_of_work() as uow:
        connection = await asyncpg_connection(uow.session)
        return await runs.runs_progress(connection, None if run_id is None else [run_id], tenant_id)


@dataclass(frozen=True)
class _PartsJob:
    """`plan_parts` for another process: what it plans, from which part on."""

    settings: OrchestratorSettings
    run_ids: list[UUID]
    now: datetime
    horizon: timedelta
    chunk_size: int
    first: int


async def _in_process(job: _PartsJob) -> None:
    """`plan_parts` in a new process (its own interpreter and connections): planning is CPU work
    in Python, one core a process."""
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        await loop.run_in_executor(pool, _plan_parts_in_new_loop, job)


def _plan_parts_in_new_loop(job: _PartsJob) -> None:
    # Imported here: bootstrap wires the entrypoints, which import this module.
    from recupero_orchestrator.bootstrap import orchestrator_service

    async def main() -> None:
        service = orchestrator_service(job.settings)
        try:
            await plan_parts(
                service,
                job.run_ids,
                job.now,
                horizon=job.horizon,
                chunk_size=job.chunk_size,
                first=job.first,
            )
        finally:
            await service.engine.dispose()

    asyncio.run(main())


async def _bulk_transaction(uow: UnitOfWork[OrchestratorRepository]) -> Any:
    """The asyncpg connection of `uow`, inside its transaction (so a chunk's locks on its range
    and its cases last until the commit), with a bulk transaction's settings (no JIT)."""
    await prepare_bulk_transaction(uow.session, work_mem="64MB")
    return await asyncpg_connection(uow.session)


async def plan_parts(
    service: Service[OrchestratorRepository],
    run_ids: list[UUID],
    now: datetime,
    *,
    horizon: timedelta,
    chunk_size: int,
    first: int = 0,
) -> None:
    """Plan the runs' unfinished parts a chunk at a time until none is left that another process
    is not planning right now."""
    pacer = Pacer()
    strategies: dict[tuple[str, str, int], StrategyDocument] = {}
    while True:
        async with service.unit_of_work() as uow:
            connection = await _bulk_transaction(uow)
            part = await runs.claim_part(connection, run_ids, first)
            if part is None:
                return
            first = part["part"]  # stay on this part while it lasts
            cases = await runs.lock_cases_of_part(connection, part, chunk_size)
            report = await _plan_chunk(uow, connection, cases, strategies, now, horizon, pacer)
            await runs.record_chunk(
                connection,
                part,
                cases[-1]["debtor_id"] if cases else None,
                vars(report),
                finished=len(cases) < chunk_size,
            )
            await uow.commit()


async def _plan_chunk(
    uow: planning.Uow,
    connection: Any,
    cases: list[Row],
    strategies: dict[tuple[str, str, int], StrategyDocument],
    now: datetime,
    horizon: timedelta,
    pacer: Pacer,
) -> DayPlanReport:
    report = DayPlanReport()
    if not cases:
        return report
    keys = [(case["tenant_id"], case["debtor_id"]) for case in cases]
    facts = await bulk.debtor_facts(connection, keys)
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
    reference = compiled(strategy).reference
    prefix = entry_key_prefix(strategy, case["segment_entered_at"]) + "/"
    stored = {
        row["action_key"]: row
        for row in facts["actions"].get((tenant_id, debtor_id), ())
        if row["action_key"].startswith(prefix)
    }
    records = [record for row in stored.values() if (record := planning._record(row)) is not None]
    if state is None:
        state = planning.state_from_facts(case, facts, tuple(records))
    else:
        state = replace(state, records=tuple(records))
    new_rows: list[tuple[Any, ...]] = []
    new_decisions: list[Row] = []
    contact_context: tuple[DebtorContactContext, tuple[ContactRecord, ...]] | None = None
    for round_number in range(_MAX_ROUNDS):
        if round_number:
            state = replace(state, records=tuple(records))
        result = plan(strategy, state, now)
        unlocked = False
        for action in result.actions:
            row = stored.get(action.key)
            if row is not None and row["status"] == "pending" and action.kind is ActionKind.CONTACT:
                continue  # already planned: nothing changes
            if row is not None or action.kind not in (ActionKind.CONTACT, ActionKind.SKIP):
                chunk.replan.append((tenant_id, debtor_id))
                return
            action_id = next(chunk.ids)
            channel = planning._step_channel(strategy, action)
            due_at, status, reason, happened = action.due_at, "pending", None, None
            if action.kind is ActionKind.SKIP:
                status, reason, happened = "skipped", action.reason, now
                new_decisions.append(
                    planning.decision_values(
                        _decided(case, action_id, action, channel),
                        "strategy.step-skipped",
                        "skipped",
                        action.reason,
                        now,
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
                            _decided(case, action_id, action, channel),
                            decision.rule_id,
                            "moved",
                            decision.reason,
                            now,
                            decision,
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
                    f"{reference}/{action.step_id or 'task'}",
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


def _decided(case: Row, action_id: UUID, action: PlannedAction, channel: ContactChannel) -> Row:
    """The new action as `planning.decision_values` records a decision about it."""
    return {
        "tenant_id": case["tenant_id"],
        "debtor_id": case["debtor_id"],
        "action_id": action_id,
        "action_key": action.key,
        "channel": channel.value,
        "due_at": action.due_at,
    }

"""Firing a claimed batch of due actions at once: the judgement of `planning.fire_strategy_action`
and `planning.fire_default_action`, with the batch's facts read in one query per table, every
decision made in memory, and the results written in one statement per table.

For each debtor with one action in the batch: the planner runs again without that action and it
goes on only if the same key is proposed again; the contact policy allows, moves or drops it; an
allowed contact is recorded in the contact history and its `action-due` goes to the outbox, a
thousand events to a row (the relay sends each as its own Kafka message, keyed by its debtor);
then the debtor is planned again in memory (`day_plan.plan_debtor`). The rare cases take the
one-by-one path in the same transaction, so both paths agree: a debtor with several actions in the
batch (an earlier one may re-plan a later one), and a debtor whose plan after firing does more than
add rows (an agent task, a stopped or paused strategy with actions to cancel, a cancelled action
coming back). Nothing is written before the whole batch is judged, and it all commits at once
with the claim, so a crash fires none of it and a new claim fires it all.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from recupero_events import ActionDue
from recupero_orchestrator import planning
from recupero_orchestrator.day_plan import DayPlanReport, Pacer, PlanWrites, plan_debtor
from recupero_orchestrator.domain.channels import (
    CONTACT_CHANNELS,
    ContactChannel,
    published_channel,
)
from recupero_orchestrator.domain.contact_policy import ProposedAction, Verdict
from recupero_orchestrator.domain.strategies import (
    ActionKind,
    StrategyDocument,
    entry_key_prefix,
    plan,
)

Row = dict[str, Any]
DebtorKey = tuple[str, str]


@dataclass
class _BatchWrites:
    settled: list[tuple[UUID, str, str | None]] = field(default_factory=list)
    moved: list[tuple[UUID, datetime]] = field(default_factory=list)
    decisions: list[Row] = field(default_factory=list)
    contacts: list[tuple[str, str, str, UUID]] = field(default_factory=list)
    tasks: list[Row] = field(default_factory=list)
    events: list[ActionDue] = field(default_factory=list)
    plans: PlanWrites = field(default_factory=PlanWrites)


async def fire_batch(uow: planning.Uow, due: list[Row], now: datetime) -> None:
    """Judge every claimed action (see `OrchestratorRepository.claim_due`) as of `now`."""
    if not due:
        return
    by_debtor: dict[DebtorKey, list[Row]] = defaultdict(list)
    for row in due:
        by_debtor[(row["tenant_id"], row["debtor_id"])].append(row)
    single = [rows[0] for rows in by_debtor.values() if len(rows) == 1]
    cases = await uow.repo.cases_of(list(by_debtor))
    facts = await uow.repo.debtor_facts([(row["tenant_id"], row["debtor_id"]) for row in single])
    planning.parse_contacts(cases.values())
    policies = planning.ContactPolicies(uow, now)
    strategies: dict[tuple[str, str, int], StrategyDocument | None] = {}
    writes = _BatchWrites()
    pacer = Pacer()
    for row in single:
        await pacer.pause()
        case = cases.get((row["tenant_id"], row["debtor_id"]))
        if row["action_key"] is None:
            # The default plan: the contact policy alone judges it, as for a strategy step.
            if case is not None and row["case_status"] == "open":
                await _decide_and_fire(uow, case, row, facts, policies, now, writes)
        else:
            strategy = None
            if case is not None and case["strategy_id"] is not None:
                reference = (case["tenant_id"], case["strategy_id"], case["strategy_version"])
                if reference not in strategies:
                    strategies[reference] = await planning.current_strategy(uow, case)
                strategy = strategies[reference]
            await _fire_strategy_action(uow, case, strategy, row, facts, policies, now, writes)
    await _write(uow, writes, now)
    for key, rows in by_debtor.items():
        if len(rows) > 1:
            for row in rows:  # in due order, as claimed
                if row["action_key"] is not None:
                    await planning.fire_strategy_action(uow, row, now)
                elif row["case_status"] == "open":
                    await planning.fire_default_action(uow, {**cases[key], **row}, now)
    for tenant_id, debtor_id in writes.plans.replan:
        await planning.replan(uow, tenant_id, debtor_id, now)


async def _fire_strategy_action(
    uow: planning.Uow,
    case: Row | None,
    strategy: StrategyDocument | None,
    row: Row,
    facts: dict[str, Any],
    policies: planning.ContactPolicies,
    now: datetime,
    writes: _BatchWrites,
) -> None:
    if case is None or strategy is None or case["status"] != "open":
        writes.settled.append((row["action_id"], "cancelled", "the case is closed"))
        return
    prefix = entry_key_prefix(strategy, case["segment_entered_at"]) + "/"
    stored = [
        action
        for action in facts["actions"].get((case["tenant_id"], case["debtor_id"]), [])
        if action["action_key"].startswith(prefix)
    ]
    records = tuple(
        record
        for action in stored
        if action["action_key"] != row["action_key"]
        and (record := planning._record(action)) is not None
    )
    state = planning.state_from_facts(case, facts, records)
    again = plan(strategy, state, now)
    proposal = next((a for a in again.actions if a.key == row["action_key"]), None)
    if proposal is None or proposal.kind is ActionKind.AGENT_TASK:
        reason = f"no longer proposed: {again.reason}"
        writes.settled.append((row["action_id"], "cancelled", reason))
        rule = f"strategy.{again.status.value}"
        writes.decisions.append(planning.decision_values(row, rule, "cancelled", reason, now))
        outcome: Row = {"status": "cancelled"}
    elif proposal.due_at > now:
        # What it is timed from happened later than first thought: it waits for its new time.
        writes.moved.append((row["action_id"], proposal.due_at))
        outcome = {"due_at": proposal.due_at}
    elif proposal.kind is ActionKind.SKIP:
        writes.settled.append((row["action_id"], "skipped", proposal.reason))
        writes.decisions.append(
            planning.decision_values(row, "strategy.step-skipped", "skipped", proposal.reason, now)
        )
        outcome = {"status": "skipped", "happened_at": now}
    else:
        outcome = await _decide_and_fire(uow, case, row, facts, policies, now, writes)
    # The debtor is planned again on what this firing changed.
    for action in stored:
        if action["action_id"] == row["action_id"]:
            action.update(outcome)
    await plan_debtor(
        case, strategy, facts, policies, now, None, writes.plans, DayPlanReport(), state
    )


async def _decide_and_fire(
    uow: planning.Uow,
    case: Row,
    row: Row,
    facts: dict[str, Any],
    policies: planning.ContactPolicies,
    now: datetime,
    writes: _BatchWrites,
) -> Row:
    """The contact policy's verdict on a due action and what follows from it; returns the
    action's new state."""
    channel = ContactChannel(row["channel"])
    context, history = planning.contact_context_from_facts(case, facts)
    policy = await policies.policy(case["tenant_id"], context.country)
    decision = policies.decide(
        policy, ProposedAction(channel, row["due_at"], row["expires_at"]), context, history
    )
    writes.decisions.append(
        planning.decision_values(
            row, decision.rule_id, decision.verdict.value, decision.reason, now, decision
        )
    )
    if decision.verdict is Verdict.DROPPED:
        writes.settled.append((row["action_id"], "dropped", decision.reason))
        return {"status": "dropped", "happened_at": now}
    if decision.verdict is Verdict.MOVED:
        assert decision.at is not None
        writes.moved.append((row["action_id"], decision.at))
        return {"due_at": decision.at}
    writes.settled.append((row["action_id"], "fired", None))
    fired = {"status": "fired", "happened_at": now, "fired_at": now}
    balance = planning.balance_from_facts(case, facts)
    published = published_channel(channel)
    if channel in planning.AGENT_CHANNELS or published is None:
        reason = f"strategy step {row['step_id']!r} is agents' work"
        writes.tasks.append(planning.agent_task(case, row, reason, balance, now))
        return fired
    if channel in CONTACT_CHANNELS:
        writes.contacts.append(
            (case["tenant_id"], case["debtor_id"], channel.value, row["action_id"])
        )
    writes.events.append(planning.action_due(case, row, published, balance))
    return fired


async def _write(uow: planning.Uow, writes: _BatchWrites, now: datetime) -> None:
    await uow.repo.settle_actions(writes.settled, now)
    await uow.repo.reschedule_actions(writes.moved)
    await uow.repo.record_contacts(writes.contacts, now)
    # A thousand `action-due` to an outbox row: the relay still sends each as its own message.
    await uow.repo.publish_in_batches(writes.events, uow.source)
    for task in writes.tasks:
        await uow.repo.create_agent_task(task)
    plans = writes.plans
    await uow.repo.add_plans(plans.schedule, plans.statuses)
    await uow.repo.record_decisions(writes.decisions + plans.decisions)

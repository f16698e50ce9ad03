"""Agents' work queues: an agent pulls its next task and records the outcome; supervisors see each
agent's queue and productivity. Outcomes leave as `agent-task-completed` (and a promise made on the
call as `promise-registered`)."""

from collections import Counter
from datetime import date, datetime
from typing import Annotated
from uuid import UUID, uuid4

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from recupero_events import (
    AgentTaskCompleted,
    AgentTaskOutcome,
    Money,
    PromiseRegistered,
)
from recupero_orchestrator import planning
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.channels import CONTACT_CHANNELS, ContactChannel
from recupero_orchestrator.handlers import Clock
from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service

router = APIRouter(prefix="/v1", tags=["agents"])

# Outcomes in which the agent spoke with the debtor; the others leave the step unanswered, so a
# fallback channel (if the strategy has one) takes over.
_REACHED = {AgentTaskOutcome.CONTACTED, AgentTaskOutcome.PROMISE, AgentTaskOutcome.REFUSED}


class AgentTask(BaseModel):
    task_id: UUID
    debtor_id: str
    action_id: UUID
    queue: str = Field(description="Collection stage of the debtor.")
    skill: str = Field(description="agent_call, field_visit or legal_referral.")
    zone: str | None = Field(description="The debtor's zone or branch, as the creditor gave it.")
    priority: int = Field(
        description="Higher first: the balance (minor units) weighted by the debtor's "
        "payment-propensity score, `balance x score / 100` (score 50 when unknown)."
    )
    template: str = Field(description="Script or letter to use.")
    reason: str = Field(description="Why the strategy created the task.")
    status: str = Field(description="`open`, `assigned`, `done` or `cancelled`.")
    agent_id: str | None
    outcome: str | None
    created_at: datetime
    completed_at: datetime | None


class PromiseIn(BaseModel):
    amount: Money
    promised_on: date


class OutcomeIn(BaseModel):
    agent_id: str = Field(min_length=1)
    outcome: AgentTaskOutcome
    note: str | None = None
    promise: PromiseIn | None = Field(
        default=None, description="Required when the outcome is `promise`."
    )


def _service(request: Request) -> Service[OrchestratorRepository]:
    service: Service[OrchestratorRepository] = request.app.state.service
    return service


def _now(request: Request) -> datetime:
    clock: Clock = request.app.state.clock
    return clock()


@router.post(
    "/agents/{agent_id}/next-task",
    response_model=AgentTask,
    summary="The agent's next task (the one in hand, else the open one of highest priority)",
    responses={204: {"description": "Nothing to do."}},
)
async def next_task(
    request: Request,
    tenant_id: TenantId,
    agent_id: str,
    queue: str | None = None,
    skill: str | None = None,
    zone: Annotated[
        list[str] | None,
        Query(description="Only tasks of these zones (repeat the parameter for several)."),
    ] = None,
) -> AgentTask | Response:
    async with _service(request).unit_of_work() as uow:
        task = await uow.repo.next_task(
            tenant_id, agent_id, queue, skill, _now(request), zones=zone
        )
        await uow.commit()
    if task is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return AgentTask.model_validate(task)


@router.post(
    "/agent-tasks/{task_id}/outcome",
    response_model=AgentTask,
    summary="Record how the task went",
)
async def record_outcome(
    request: Request, tenant_id: TenantId, task_id: UUID, body: OutcomeIn
) -> AgentTask:
    if (body.outcome is AgentTaskOutcome.PROMISE) != (body.promise is not None):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={"errors": ["promise: give the promise exactly when the outcome is `promise`"]},
        )
    now = _now(request)
    async with _service(request).unit_of_work() as uow:
        found = await uow.repo.task(tenant_id, task_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agent task {task_id}")
        # The case first, as every consumer does, so that nobody waits on a lock we hold.
        await uow.repo.case_for_update(tenant_id, found["debtor_id"])
        task = await uow.repo.task(tenant_id, task_id, lock=True)
        assert task is not None
        if task["status"] not in ("open", "assigned"):
            raise HTTPException(status.HTTP_409_CONFLICT, f"the task is {task['status']}")
        if task["status"] == "assigned" and task["agent_id"] != body.agent_id:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"the task is assigned to agent {task['agent_id']!r}"
            )
        debtor_id = task["debtor_id"]
        await uow.repo.complete_task(task_id, body.agent_id, body.outcome.value, body.note, now)
        reached = body.outcome in _REACHED
        await uow.repo.record_delivery(
            tenant_id, task["action_id"], "read" if reached else "failed", now
        )
        if ContactChannel(task["skill"]) in CONTACT_CHANNELS:
            await uow.repo.record_contact(
                tenant_id, debtor_id, task["skill"], now, reached, task["action_id"]
            )
        uow.publish(
            AgentTaskCompleted(
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                task_id=task_id,
                action_id=task["action_id"],
                agent_id=body.agent_id,
                skill=task["skill"],
                outcome=body.outcome,
                note=body.note,
                completed_at=now,
            )
        )
        if body.promise is not None:
            # Handled like any other promise when it comes back from Kafka: the strategy pauses.
            uow.publish(
                PromiseRegistered(
                    tenant_id=tenant_id,
                    debtor_id=debtor_id,
                    promise_id=uuid4(),
                    amount=body.promise.amount,
                    promised_on=body.promise.promised_on,
                    source="agent",
                    registered_at=now,
                )
            )
        await planning.replan(uow, tenant_id, debtor_id, now)
        await uow.commit()
        done = await uow.repo.task(tenant_id, task_id)
    assert done is not None
    return AgentTask.model_validate(done)


class QueueDepth(BaseModel):
    queue: str = Field(description="Collection stage.")
    skill: str
    zone: str | None = Field(description="Null for debtors whose zone is not known.")
    open: int = Field(description="Tasks waiting for an agent.")
    assigned: int = Field(description="Tasks in an agent's hands, not yet done.")
    top_priority: int | None = Field(description="Priority of the first open task.")
    oldest_open_at: datetime | None = Field(description="When the longest-waiting task was made.")


@router.get(
    "/agent-queues",
    response_model=list[QueueDepth],
    summary="Queue depth per stage, skill and zone (a supervisor's view of the backlog)",
)
async def queue_depths(request: Request, tenant_id: TenantId) -> list[QueueDepth]:
    async with _service(request).unit_of_work() as uow:
        rows = await uow.repo.queue_depths(tenant_id)
    return [QueueDepth.model_validate(row) for row in rows]


class AgentSummary(BaseModel):
    agent_id: str
    in_hand: int = Field(description="Tasks assigned and not yet done.")
    done: int
    outcomes: dict[str, int] = Field(description="Done tasks per outcome.")
    contact_rate: float = Field(description="Done tasks in which the debtor was reached.")


@router.get(
    "/agent-tasks",
    response_model=list[AgentTask],
    summary="Tasks of the tenant, or of one agent (a supervisor's view of a queue)",
)
async def list_tasks(
    request: Request, tenant_id: TenantId, agent_id: str | None = None
) -> list[AgentTask]:
    async with _service(request).unit_of_work() as uow:
        rows = await uow.repo.tasks_of(tenant_id, agent_id)
    return [AgentTask.model_validate(row) for row in rows]


@router.get(
    "/agents/productivity",
    response_model=list[AgentSummary],
    summary="Per agent: tasks in hand, done, outcomes and contact rate",
)
async def productivity(request: Request, tenant_id: TenantId) -> list[AgentSummary]:
    async with _service(request).unit_of_work() as uow:
        rows = await uow.repo.tasks_of(tenant_id, None)
    by_agent: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        if row["agent_id"] is not None:
            by_agent.setdefault(row["agent_id"], []).append(row)
    summaries = []
    for agent_id, tasks in sorted(by_agent.items()):
        outcomes = Counter(str(t["outcome"]) for t in tasks if t["status"] == "done")
        done = sum(outcomes.values())
        reached = sum(outcomes[o.value] for o in _REACHED)
        summaries.append(
            AgentSummary(
                agent_id=agent_id,
                in_hand=sum(t["status"] == "assigned" for t in tasks),
                done=done,
                outcomes=dict(outcomes),
                contact_rate=reached / done if done else 0.0,
            )
        )
    return summaries

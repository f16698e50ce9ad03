"""Planning the day: on request for the caller's tenant (what the daily run does,
`day_plan.plan_day`, e.g. after loading a new portfolio or a new strategy version), and the
tenant's runs with their progress."""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from recupero_orchestrator.day_plan import day_plan_runs, plan_day
from recupero_orchestrator.entrypoints.strategies import _now, _service
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.auth import TenantId

router = APIRouter(prefix="/v1", tags=["plans"])


class DayPlanRun(BaseModel):
    run_id: UUID = Field(description="The run, as listed under `GET /v1/plans/runs`.")
    plan_date: date = Field(description="The UTC day planned.")
    trigger: str = Field(description="`daily` (the day's scheduled run) or `request`.")
    planned_at: datetime = Field(description="The instant the day was planned for.")
    started_at: datetime
    finished_at: datetime | None = Field(
        description="Null while under way (or interrupted: the next start resumes it)."
    )
    parts: int = Field(description="Disjoint ranges of debtors the run is split into.")
    parts_finished: int
    debtors: int = Field(description="Open cases on a strategy planned so far.")
    actions: int = Field(description="New actions on the schedule.")
    skipped: int = Field(description="Steps recorded as skipped (a condition unmet, too late).")
    moved: int = Field(
        description="Steps due within the day placed on a later slot by the contact policy "
        "(each with its decision and rule)."
    )
    replanned: int = Field(
        description="Debtors whose plan did more than add actions (an agent task, a paused or "
        "stopped strategy), planned one by one."
    )


def _run(row: dict[str, Any]) -> DayPlanRun:
    return DayPlanRun.model_validate(row)


@router.post(
    "/plans:run",
    response_model=DayPlanRun,
    summary="Plan the day now for every open case of the tenant",
)
async def run_day_plan(request: Request, tenant_id: TenantId) -> DayPlanRun:
    settings: OrchestratorSettings = request.app.state.settings
    service = _service(request)
    report = await plan_day(
        service,
        _now(request),
        tenant_id=tenant_id,
        on_request=True,
        chunk_size=settings.day_plan_chunk_size,
        parts=settings.day_plan_parts,
        processes=settings.day_plan_processes,
    )
    (run,) = await day_plan_runs(service, tenant_id, report.runs[0])
    return _run(run)


@router.get(
    "/plans/runs",
    response_model=list[DayPlanRun],
    summary="The tenant's day plans, newest first, with their progress",
)
async def list_day_plan_runs(request: Request, tenant_id: TenantId) -> list[DayPlanRun]:
    return [_run(row) for row in await day_plan_runs(_service(request), tenant_id)]


@router.get(
    "/plans/runs/{run_id}",
    response_model=DayPlanRun,
    summary="One day plan and its progress",
)
async def get_day_plan_run(request: Request, tenant_id: TenantId, run_id: UUID) -> DayPlanRun:
    found = await day_plan_runs(_service(request), tenant_id, run_id)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such run")
    return _run(found[0])

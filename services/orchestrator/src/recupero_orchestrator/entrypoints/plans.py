"""Planning the day on request: what the daily run does (`day_plan.plan_day`), for the caller's
tenant, e.g. after loading a new portfolio or a new strategy version."""

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from recupero_orchestrator.day_plan import plan_day
from recupero_orchestrator.entrypoints.strategies import _now, _service
from recupero_runtime.auth import TenantId

router = APIRouter(prefix="/v1", tags=["plans"])


class DayPlanRun(BaseModel):
    planned_at: datetime = Field(description="The instant the day was planned for.")
    debtors: int = Field(description="Open cases on a strategy that were planned.")
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


@router.post(
    "/plans:run",
    response_model=DayPlanRun,
    summary="Plan the day now for every open case of the tenant",
)
async def run_day_plan(request: Request, tenant_id: TenantId) -> DayPlanRun:
    now = _now(request)
    chunk_size: int = request.app.state.day_plan_chunk_size
    report = await plan_day(_service(request), now, tenant_id=tenant_id, chunk_size=chunk_size)
    return DayPlanRun(
        planned_at=now,
        debtors=report.debtors,
        actions=report.actions,
        skipped=report.skipped,
        moved=report.moved,
        replanned=report.replanned,
    )

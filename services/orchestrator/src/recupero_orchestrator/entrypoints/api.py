"""Read access to a debtor's case and schedule: why was (or wasn't) a debtor contacted."""

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service

router = APIRouter(prefix="/v1", tags=["cases"])


class ScheduledAction(BaseModel):
    action_id: UUID
    strategy: str = Field(description="Strategy and step that planned it.")
    channel: str
    template: str
    due_at: datetime
    status: str = Field(description="`pending`, `fired` or `cancelled`.")
    status_reason: str | None = Field(description="Why it was cancelled, when it was.")
    fired_at: datetime | None


class Case(BaseModel):
    debtor_id: str
    status: str = Field(description="`open` while collecting, `closed` once settled.")
    closed_reason: str | None
    segment: str
    stage: str
    actions: list[ScheduledAction]


@router.get("/cases/{debtor_id}", response_model=Case, summary="A debtor's case and schedule")
async def get_case(request: Request, tenant_id: TenantId, debtor_id: str) -> Case:
    service: Service[OrchestratorRepository] = request.app.state.service
    async with service.unit_of_work() as uow:
        case = await uow.repo.case_for_update(tenant_id, debtor_id)
        if case is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case for debtor {debtor_id!r}")
        actions = await uow.repo.actions_of(tenant_id, debtor_id)
    return Case(
        debtor_id=debtor_id,
        status=case["status"],
        closed_reason=case["closed_reason"],
        segment=case["segment"],
        stage=case["stage"],
        actions=[ScheduledAction.model_validate(action) for action in actions],
    )

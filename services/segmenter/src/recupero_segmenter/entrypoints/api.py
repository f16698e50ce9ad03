"""Read access to placements: a supervisor can see where a debtor is and why."""

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service
from recupero_segmenter.adapters.repository import SegmenterRepository

router = APIRouter(prefix="/v1", tags=["segments"])


class PlacementRecord(BaseModel):
    segment: str
    stage: str
    days_past_due: int
    balance_minor: int = Field(description="Outstanding balance in minor units when placed.")
    ruleset_version: str
    reason: str = Field(description="Which rule put the debtor there and why.")
    evaluated_at: datetime


@router.get(
    "/debtors/{debtor_id}/segments",
    response_model=list[PlacementRecord],
    summary="Segment history of a debtor, newest first",
)
async def segment_history_of(
    request: Request, tenant_id: TenantId, debtor_id: str
) -> list[PlacementRecord]:
    service: Service[SegmenterRepository] = request.app.state.service
    async with service.unit_of_work() as uow:
        rows = [
            PlacementRecord.model_validate(row)
            for row in await uow.repo.history(tenant_id, debtor_id)
        ]
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"debtor {debtor_id!r} has no placements")
    return rows

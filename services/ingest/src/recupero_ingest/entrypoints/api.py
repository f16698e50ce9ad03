"""HTTP entrypoint: translates requests into handler calls and owns the transaction boundary."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, File, HTTPException, Request, UploadFile, status
from pydantic import BaseModel, Field

from recupero_ingest import handlers
from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.settings import IngestSettings
from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service

router = APIRouter(prefix="/v1", tags=["imports"])


class RowRejection(BaseModel):
    row_number: int = Field(description="Row in the file as a spreadsheet numbers it (header = 1).")
    field: str = Field(description="Column that failed validation.")
    value: str = Field(description="Value as received.")
    reason: str = Field(description="Why it was rejected.")


class ImportReport(BaseModel):
    import_id: UUID
    status: str = Field(description="`running` or `completed`.")
    filename: str
    rows_total: int
    rows_accepted: int
    rows_rejected: int
    debtors_new: int
    debtors_changed: int
    debtors_unchanged: int
    balance_by_currency: dict[str, int] = Field(
        description="Sum of debtor balances in the file, minor units per ISO-4217 currency."
    )
    rejections: list[RowRejection]


def _service(request: Request) -> Service[IngestRepository]:
    service: Service[IngestRepository] = request.app.state.service
    return service


async def _report(
    service: Service[IngestRepository], tenant_id: str, import_id: UUID
) -> ImportReport:
    async with service.unit_of_work() as uow:
        job = await uow.repo.get_import(tenant_id, import_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} not found")
        rejected = await uow.repo.list_rejections(tenant_id, import_id)
    fields: dict[str, Any] = {key: job[key] for key in ImportReport.model_fields if key in job}
    return ImportReport(**fields, rejections=[RowRejection(**row) for row in rejected])


@router.post(
    "/portfolios",
    status_code=status.HTTP_201_CREATED,
    response_model=ImportReport,
    summary="Import a portfolio CSV",
    description="Stores the file's debt documents, emits `debt-imported` for every new or changed "
    "debtor and reports each rejected row with its field and reason.",
)
async def import_portfolio(
    request: Request, tenant_id: TenantId, file: Annotated[UploadFile, File()]
) -> ImportReport:
    service = _service(request)
    settings: IngestSettings = request.app.state.settings
    content = await file.read(settings.max_upload_bytes + 1)
    if len(content) > settings.max_upload_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"file larger than {settings.max_upload_bytes} bytes; split it or use the batch API",
        )
    command = handlers.ImportPortfolio(
        tenant_id=tenant_id, filename=file.filename or "upload.csv", content=content
    )
    async with service.unit_of_work(request.state.correlation_id) as uow:
        try:
            summary = await handlers.import_portfolio(command, uow)
        except handlers.UnreadableFile as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        await uow.commit()
    return await _report(service, tenant_id, summary.import_id)


@router.get("/imports/{import_id}", response_model=ImportReport, summary="Report of an import")
async def get_import(request: Request, tenant_id: TenantId, import_id: UUID) -> ImportReport:
    return await _report(_service(request), tenant_id, import_id)

"""HTTP entrypoint: translates requests into handler calls and owns the transaction boundary."""

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from recupero_ingest import handlers
from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.domain.profiles import ImportProfile, ProfileError
from recupero_ingest.entrypoints.worker import ImportWorker
from recupero_ingest.settings import IngestSettings
from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service

router = APIRouter(prefix="/v1")
REJECTIONS_SHOWN = 100


class RowRejection(BaseModel):
    row_number: int = Field(description="Row in the file as a spreadsheet numbers it (header = 1).")
    field: str = Field(description="Canonical field that failed validation.")
    value: str = Field(description="Value as received.")
    reason: str = Field(description="Why it was rejected.")


class ImportReport(BaseModel):
    import_id: UUID
    tenant_id: str = Field(description="Tenant that owns the import (the API key's tenant).")
    status: str = Field(description="`received`, `parsing`, `completed` or `failed`.")
    source: str = Field(description="`file`, `api` or `kafka`.")
    filename: str
    profile_name: str
    profile_version: int = Field(description="Version of the tenant's profile; 0 = shipped one.")
    mode: str = Field(description="`incremental`, or `full` (missing documents are settled).")
    as_of: datetime = Field(description="When the creditor's snapshot was taken.")
    bytes_total: int
    bytes_processed: int = Field(description="Progress through the file while parsing.")
    rows_total: int = Field(description="Rows read so far (all of them once completed).")
    rows_accepted: int
    rows_rejected: int
    debtors_new: int
    debtors_changed: int
    debtors_unchanged: int
    debtors_settled: int
    balance_by_currency: dict[str, int] = Field(
        description="Sum of the file's debtors' balances, minor units per ISO-4217 currency."
    )
    error: str | None = Field(description="Why a failed import failed (nothing was imported).")
    same_file_as: UUID | None = Field(
        description="The earlier import of this very file, when it was the last one applied: "
        "nothing had changed since, so this import changed nothing and repeats its report."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rejections: list[RowRejection] = Field(
        description=f"The first {REJECTIONS_SHOWN} rejected rows; all of them in rejections.csv."
    )
    rejections_csv: str = Field(description="Where to download every rejection as CSV.")


class BatchIn(BaseModel):
    mode: Literal["incremental", "full"] = "incremental"
    as_of: AwareDatetime | None = Field(default=None, description="Snapshot time; default now.")
    records: list[dict[str, Any]] = Field(
        min_length=1,
        description="Document records in the canonical field names (see docs/import-profiles.md): "
        "debtor_id, name, document_id, due_on (YYYY-MM-DD), amount or principal/interest/fees "
        "(decimal strings), currency, and optional contact and attribute fields.",
    )


class InterestPolicy(BaseModel):
    kind: Literal["none", "simple_daily"] = Field(
        description="`none`, or simple interest on overdue principal at `daily_rate` per day."
    )
    daily_rate: str | None = Field(
        default=None,
        pattern=r"^0(\.\d{1,10})?$",
        description="Daily rate as a decimal fraction, e.g. `0.0005` (0.05% a day).",
    )


class ProfileVersion(BaseModel):
    name: str
    version: int = Field(description="0 for a profile Recupero ships, else the tenant's version.")
    profile: dict[str, Any]


def _service(request: Request) -> Service[IngestRepository]:
    service: Service[IngestRepository] = request.app.state.service
    return service


def _settings(request: Request) -> IngestSettings:
    settings: IngestSettings = request.app.state.settings
    return settings


def _shipped(request: Request) -> dict[str, ImportProfile]:
    shipped: dict[str, ImportProfile] = request.app.state.shipped_profiles
    return shipped


async def _report(
    service: Service[IngestRepository], tenant_id: str, import_id: UUID
) -> ImportReport:
    async with service.unit_of_work() as uow:
        job = await uow.repo.get_import(tenant_id, import_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} not found")
        rejected = await uow.repo.list_rejections(tenant_id, import_id, REJECTIONS_SHOWN)
    return ImportReport.model_validate(
        {
            **job,
            "rejections": rejected,
            "rejections_csv": f"/v1/imports/{import_id}/rejections.csv",
        }
    )


async def _upload_chunks(file: UploadFile, chunk_size: int, limit: int) -> AsyncIterator[bytes]:
    received = 0
    while chunk := await file.read(chunk_size):
        received += len(chunk)
        if received > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"file larger than {limit} bytes; split it or stream records instead",
            )
        yield chunk


@router.post(
    "/portfolios",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportReport,
    tags=["imports"],
    summary="Import a portfolio file (CSV or XLSX)",
    description="Stores the file and queues its import; follow it at `/v1/imports/{id}`. With "
    "`wait`, answers when the import has finished (or after that many seconds). Each rejected "
    "row is reported with its field and reason; valid rows are imported regardless.",
)
async def import_portfolio(
    request: Request,
    tenant_id: TenantId,
    file: Annotated[UploadFile, File(description="The creditor's export.")],
    profile: Annotated[str, Form(description="Import profile name.")] = "generic-csv",
    mode: Annotated[Literal["incremental", "full"], Form()] = "incremental",
    as_of: Annotated[AwareDatetime | None, Form(description="Snapshot time; default now.")] = None,
    wait: Annotated[float, Query(ge=0, le=600, description="Seconds to wait for the end.")] = 0,
) -> ImportReport:
    service, settings = _service(request), _settings(request)
    worker: ImportWorker = request.app.state.worker
    worker.warm_up()
    command = handlers.SubmitImport(
        tenant_id=tenant_id,
        filename=file.filename or "upload",
        profile_name=profile,
        mode=mode,
        as_of=as_of or datetime.now(UTC),
    )
    async with service.unit_of_work(request.state.correlation_id) as uow:
        try:
            import_id = await handlers.submit_import(
                command,
                uow,
                _upload_chunks(file, settings.upload_chunk_bytes, settings.max_upload_bytes),
                _shipped(request),
            )
        except handlers.UnknownProfile as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"profile {profile!r} does not exist; PUT /v1/profiles/{profile} to create it",
            ) from exc
        await uow.commit()
    worker.notify()
    deadline = asyncio.get_running_loop().time() + wait
    report = await _report(service, tenant_id, import_id)
    while (
        report.status not in ("completed", "failed")
        and asyncio.get_running_loop().time() < deadline
    ):
        await asyncio.sleep(0.2)
        report = await _report(service, tenant_id, import_id)
    return report


@router.get(
    "/imports/{import_id}",
    response_model=ImportReport,
    tags=["imports"],
    summary="Progress and report of an import",
)
async def get_import(request: Request, tenant_id: TenantId, import_id: UUID) -> ImportReport:
    return await _report(_service(request), tenant_id, import_id)


@router.get(
    "/imports/{import_id}/rejections.csv",
    tags=["imports"],
    summary="Every rejected row of an import, as CSV",
    response_class=StreamingResponse,
)
async def rejections_csv(
    request: Request, tenant_id: TenantId, import_id: UUID
) -> StreamingResponse:
    service = _service(request)
    async with service.unit_of_work() as uow:
        if await uow.repo.get_import(tenant_id, import_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} not found")
        rejected = await uow.repo.list_rejections(tenant_id, import_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row_number", "field", "value", "reason"])
    writer.writerows([r["row_number"], r["field"], r["value"], r["reason"]] for r in rejected)
    return StreamingResponse(
        iter([out.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="rejections-{import_id}.csv"'},
    )


@router.post(
    "/debts:batch",
    response_model=ImportReport,
    tags=["imports"],
    summary="Import a batch of document records from a core system",
    description="Same validation, consolidation and idempotency as a file: sending the same "
    "records again changes nothing and emits no event.",
)
async def import_batch(request: Request, tenant_id: TenantId, body: BatchIn) -> ImportReport:
    settings = _settings(request)
    if len(body.records) > settings.max_batch_records:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(body.records)} records; at most {settings.max_batch_records} per call",
        )
    service = _service(request)
    command = handlers.ImportRecords(
        tenant_id=tenant_id,
        records=body.records,
        source="api",
        mode=body.mode,
        as_of=body.as_of or datetime.now(UTC),
    )
    async with service.unit_of_work(request.state.correlation_id) as uow:
        import_id, _ = await handlers.import_records(command, uow, request.state.correlation_id)
        await uow.commit()
    return await _report(service, tenant_id, import_id)


@router.put(
    "/profiles/{name}",
    response_model=ProfileVersion,
    status_code=status.HTTP_201_CREATED,
    tags=["profiles"],
    summary="Create a new version of an import profile (YAML or JSON body)",
    description="The document is validated before it is stored; a 422 says which field is "
    "wrong and why. Earlier versions are kept; imports record the version they used.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def put_profile(request: Request, tenant_id: TenantId, name: str) -> ProfileVersion:
    try:
        document = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "body is not UTF-8") from exc
    async with _service(request).unit_of_work(request.state.correlation_id) as uow:
        try:
            profile, version = await handlers.save_profile(uow, tenant_id, name, document)
        except ProfileError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        await uow.commit()
    return ProfileVersion(name=name, version=version, profile=profile.model_dump(mode="json"))


@router.get("/profiles/{name}", response_model=ProfileVersion, tags=["profiles"])
async def get_profile(request: Request, tenant_id: TenantId, name: str) -> ProfileVersion:
    async with _service(request).unit_of_work() as uow:
        try:
            profile, version = await handlers.resolve_profile(
                uow.repo, tenant_id, name, _shipped(request)
            )
        except handlers.UnknownProfile as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"profile {name!r} not found") from exc
    return ProfileVersion(name=name, version=version, profile=profile.model_dump(mode="json"))


@router.get("/profiles", response_model=list[ProfileVersion], tags=["profiles"])
async def list_profiles(request: Request, tenant_id: TenantId) -> list[ProfileVersion]:
    async with _service(request).unit_of_work() as uow:
        own = await uow.repo.list_profiles(tenant_id)
        names = sorted({*_shipped(request), *(p["name"] for p in own)})
        found = [
            await handlers.resolve_profile(uow.repo, tenant_id, name, _shipped(request))
            for name in names
        ]
    return [
        ProfileVersion(name=name, version=version, profile=profile.model_dump(mode="json"))
        for name, (profile, version) in zip(names, found, strict=True)
    ]


@router.put("/settings/interest", response_model=InterestPolicy, tags=["settings"])
async def put_interest_policy(
    request: Request, tenant_id: TenantId, policy: InterestPolicy
) -> InterestPolicy:
    if (policy.kind == "simple_daily") != (policy.daily_rate is not None):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "daily_rate is required with kind simple_daily and not allowed with none",
        )
    async with _service(request).unit_of_work(request.state.correlation_id) as uow:
        await uow.repo.set_interest_policy(tenant_id, policy.model_dump(exclude_none=True))
        await uow.commit()
    return policy


@router.get("/settings/interest", response_model=InterestPolicy, tags=["settings"])
async def get_interest_policy(request: Request, tenant_id: TenantId) -> InterestPolicy:
    async with _service(request).unit_of_work() as uow:
        return InterestPolicy.model_validate(await uow.repo.interest_policy(tenant_id))

"""HTTP entrypoint: translates requests into read-model queries and the results into responses."""

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from recupero_events import CollectionStage, DocumentKind, Money
from recupero_portal_api import handlers, views
from recupero_portal_api.adapters.repository import PortalRepository
from recupero_portal_api.domain.promises import PromiseRejected
from recupero_portal_api.settings import PortalSettings
from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service

router = APIRouter(prefix="/v1", tags=["debtors"])


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MoneyView(_View):
    amount_minor: int = Field(
        description="Amount in the currency's minor units (centavos, cents); never a float.",
        examples=[1523050],
    )
    currency: str = Field(description="ISO-4217 alphabetic currency code.", examples=["MXN"])


class ContactView(_View):
    name: str = Field(description="Debtor's full name.", examples=["Ana Pérez"])
    email: str | None = Field(description="Email address, if known.", examples=["ana@example.com"])
    phone: str | None = Field(
        description="Phone number in E.164 form, if known.", examples=["+5215512345678"]
    )
    country: str = Field(description="ISO-3166 alpha-2 country.", examples=["MX"])
    time_zone: str = Field(
        description="IANA time zone of the debtor; days past due are counted in it.",
        examples=["America/Mexico_City"],
    )


class DocumentView(_View):
    document_id: str = Field(description="Creditor's identifier of the document.")
    kind: DocumentKind = Field(description="What the document is.")
    due_on: date = Field(description="Date the document fell or falls due.")
    amount: MoneyView = Field(description="Outstanding amount; negative for a credit note.")


class TimelineEntry(_View):
    occurred_at: datetime = Field(
        description="When the event happened (its CloudEvents time), UTC."
    )
    topic: str = Field(
        description="Kafka topic the event was published on.", examples=["action-due"]
    )
    type: str = Field(
        description="CloudEvents type, with version.", examples=["com.recupero.action.due.v1"]
    )
    summary: str = Field(
        description="One line a person can read.",
        examples=["Action due: first-reminder by whatsapp"],
    )
    details: dict[str, Any] = Field(description="The event's payload exactly as published.")


class DebtorView(_View):
    debtor_id: str = Field(description="The creditor's identifier of the debtor.")
    contact: ContactView = Field(description="How to reach the debtor, from the newest snapshot.")
    documents: list[DocumentView] = Field(
        description="Open documents in the creditor's newest snapshot; empty until it arrives."
    )
    balance: MoneyView = Field(
        description="Outstanding balance: the creditor's snapshot minus payments received after it."
    )
    segment: str | None = Field(description="Segment (aging bucket); null until segmented.")
    stage: CollectionStage | None = Field(description="Collection stage; null until segmented.")
    days_past_due: int | None = Field(
        description="Days past due in the debtor's time zone when last segmented; negative while "
        "not yet due; null until segmented."
    )
    timeline: list[TimelineEntry] = Field(
        description="Everything that happened to the debtor, oldest first."
    )


class DebtorListItem(_View):
    debtor_id: str = Field(description="The creditor's identifier of the debtor.")
    name: str = Field(description="Debtor's full name.")
    balance: MoneyView = Field(description="Outstanding balance after later payments.")
    segment: str | None = Field(description="Segment (aging bucket); null until segmented.")
    stage: CollectionStage | None = Field(description="Collection stage; null until segmented.")


class DebtorPage(_View):
    items: list[DebtorListItem] = Field(description="This page of debtors, by debtor id.")
    total: int = Field(description="How many debtors match the filter in all.")
    limit: int = Field(description="Page size asked for.")
    offset: int = Field(description="How many matching debtors precede this page.")


class TenantSummary(_View):
    debtors_imported: int = Field(description="Distinct debtors with at least one debt-imported.")
    debtors_segmented: int = Field(description="Distinct debtors placed in a segment.")
    actions_due: int = Field(description="Collection actions that came due.")
    messages_sent: int = Field(description="Messages a provider accepted.")
    promises_registered: int = Field(description="Promises to pay registered.")
    payments_applied: int = Field(description="Payments received.")
    outstanding_by_currency: dict[str, int] = Field(
        description="Total outstanding balance of the tenant's debtors, minor units per ISO-4217 "
        "currency.",
        examples=[{"MXN": 152305000}],
    )


def _service(request: Request) -> Service[PortalRepository]:
    service: Service[PortalRepository] = request.app.state.service
    return service


@router.get(
    "/debtors/{debtor_id}",
    response_model=DebtorView,
    summary="A debtor's account",
    description="Contact, documents, current balance, segment and stage, and the debtor's full "
    "timeline of events.",
    responses={404: {"description": "No debtor with this id for the caller's tenant."}},
)
async def get_debtor(request: Request, tenant_id: TenantId, debtor_id: str) -> DebtorView:
    async with _service(request).unit_of_work(request.state.correlation_id) as uow:
        detail = await views.debtor_detail(uow.repo, tenant_id, debtor_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"debtor {debtor_id!r} not found")
    return DebtorView.model_validate(detail)


@router.get(
    "/debtors",
    response_model=DebtorPage,
    summary="List debtors",
    description="The tenant's debtors by debtor id, optionally only one segment's.",
)
async def list_debtors(
    request: Request,
    tenant_id: TenantId,
    segment: Annotated[str | None, Query(description="Only debtors in this segment.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Debtors to skip.")] = 0,
) -> DebtorPage:
    async with _service(request).unit_of_work(request.state.correlation_id) as uow:
        page = await views.debtor_page(uow.repo, tenant_id, segment, limit, offset)
    return DebtorPage.model_validate(page)


@router.get(
    "/summary",
    response_model=TenantSummary,
    tags=["summary"],
    summary="Tenant activity summary",
    description="How many debtors were imported and segmented, how many actions, messages, "
    "promises and payments there were, and the total outstanding balance per currency.",
)
async def get_summary(request: Request, tenant_id: TenantId) -> TenantSummary:
    async with _service(request).unit_of_work(request.state.correlation_id) as uow:
        summary = await views.tenant_summary(uow.repo, tenant_id)
    return TenantSummary.model_validate(summary)


class PromiseIn(BaseModel):
    amount: MoneyView = Field(description="Amount the debtor promises to pay, in minor units.")
    promised_on: date = Field(description="Date by which the debtor will pay (debtor's calendar).")
    source: Literal["portal", "agent"] = Field(
        default="portal", description="Who registered it: the debtor on the portal or an agent."
    )


class PromiseOut(_View):
    promise_id: UUID
    debtor_id: str
    amount: MoneyView
    promised_on: date
    source: str
    registered_at: datetime


@router.post(
    "/debtors/{debtor_id}/promises",
    response_model=PromiseOut,
    status_code=status.HTTP_201_CREATED,
    tags=["promises"],
    summary="Register a promise to pay",
    description="Validates the promise against the debtor's debt and publishes "
    "`promise-registered`. 422 names the field at fault.",
    responses={404: {"description": "No debtor with this id for the caller's tenant."}},
)
async def register_promise(
    request: Request, tenant_id: TenantId, debtor_id: str, body: PromiseIn
) -> PromiseOut:
    settings: PortalSettings = request.app.state.settings
    command = handlers.RegisterPromise(
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        amount=Money(amount_minor=body.amount.amount_minor, currency=body.amount.currency),
        promised_on=body.promised_on,
        source=body.source,
        registered_at=datetime.now(UTC),
    )
    async with _service(request).unit_of_work(request.state.correlation_id) as uow:
        try:
            promise = await handlers.register_promise(command, uow, settings.max_promise_days_ahead)
        except handlers.UnknownDebtor as exc:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"debtor {debtor_id!r} not found"
            ) from exc
        except PromiseRejected as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", *exc.field.split(".")], "msg": exc.reason}],
            ) from exc
        await uow.commit()
    return PromiseOut.model_validate(promise.model_dump())

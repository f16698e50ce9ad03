"""HTTP entrypoint for recording payments; owns the transaction boundary."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import AwareDatetime, BaseModel, Field

from recupero_events import Money
from recupero_payments import handlers
from recupero_payments.adapters.repository import PaymentsRepository
from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service

router = APIRouter(prefix="/v1", tags=["payments"])


class PaymentIn(BaseModel):
    debtor_id: Annotated[str, Field(min_length=1, description="Creditor's id of the debtor.")]
    amount: Money = Field(description="Amount paid, positive, in minor units.")
    method: str = Field(
        default="bank_transfer", min_length=1, description="How it was paid.", examples=["cash"]
    )
    external_reference: str | None = Field(
        default=None,
        min_length=1,
        description="Bank or provider reference; a retry with the same reference is not "
        "recorded twice.",
    )
    received_at: AwareDatetime | None = Field(
        default=None, description="When the money arrived (timezone-aware); defaults to now."
    )


class Payment(BaseModel):
    payment_id: UUID
    debtor_id: str
    amount: Money
    method: str
    external_reference: str | None
    received_at: datetime
    recorded_at: datetime


def _payment(row: dict[str, object]) -> Payment:
    return Payment.model_validate(
        {**row, "amount": {"amount_minor": row["amount_minor"], "currency": row["currency"]}}
    )


@router.post(
    "/payments",
    response_model=Payment,
    status_code=status.HTTP_201_CREATED,
    summary="Record a payment",
    description="Records the payment and publishes `payment-received`. Returns 200 with the "
    "original payment when the same external reference is sent again; 409 when that reference "
    "already belongs to a different payment.",
)
async def record_payment(
    request: Request, response: Response, tenant_id: TenantId, body: PaymentIn
) -> Payment:
    if body.amount.amount_minor <= 0:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "amount.amount_minor must be positive"
        )
    service: Service[PaymentsRepository] = request.app.state.service
    command = handlers.RecordPayment(
        tenant_id=tenant_id,
        debtor_id=body.debtor_id,
        amount=body.amount,
        method=body.method,
        external_reference=body.external_reference,
        received_at=body.received_at or datetime.now(UTC),
    )
    async with service.unit_of_work(request.state.correlation_id) as uow:
        try:
            stored, created = await handlers.record_payment(command, uow)
        except handlers.ConflictingPayment as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        await uow.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return _payment(stored)


@router.get("/payments/{payment_id}", response_model=Payment, summary="A recorded payment")
async def get_payment(request: Request, tenant_id: TenantId, payment_id: UUID) -> Payment:
    service: Service[PaymentsRepository] = request.app.state.service
    async with service.unit_of_work() as uow:
        stored = await uow.repo.by_id(tenant_id, payment_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"payment {payment_id} not found")
    return _payment(stored)

"""Tenant-scoped API for the channels a debtor authorised (Colombia's Ley 2300 de 2023 allows contact
only on those): record them with when and how they were given, read them with their history,
revoke one. The contact policy judges every action at its time against what is recorded then."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from recupero_orchestrator import authorisations
from recupero_orchestrator.domain.authorisations import AuthorisationSource, not_authorisable
from recupero_orchestrator.domain.channels import ChannelField, ContactChannel, parse_channel
from recupero_orchestrator.entrypoints.strategies import _now, _service
from recupero_runtime.auth import TenantId

router = APIRouter(prefix="/v1", tags=["contact policy"])


def _authorisable(channel: ContactChannel) -> ContactChannel:
    problem = not_authorisable(channel)
    if problem is not None:
        raise ValueError(problem)
    return channel


AuthorisableChannel = Annotated[ChannelField, AfterValidator(_authorisable)]


def _distinct(channels: list[ContactChannel]) -> list[ContactChannel]:
    repeated = sorted({c.value for c in channels if channels.count(c) > 1})
    if repeated:
        raise ValueError(f"channels listed more than once: {', '.join(repeated)}")
    return channels


class AuthorisationIn(BaseModel):
    channels: Annotated[list[AuthorisableChannel], AfterValidator(_distinct)] = Field(
        min_length=1,
        description="Channels the debtor authorised: whatsapp, sms, email, ivr, letter, "
        "agent_call, field_visit.",
        examples=[["whatsapp", "email"]],
    )
    authorised_at: AwareDatetime = Field(
        description="When the debtor gave the authorisation (not in the future).",
        examples=["2026-11-02T15:04:00Z"],
    )
    evidence: str = Field(
        min_length=1,
        max_length=2000,
        description="How it was given and where the proof is: a signed form, a recorded call.",
        examples=["signed form F-2291, scanned to the CRM"],
    )


class RevocationIn(BaseModel):
    revoked_at: AwareDatetime | None = Field(
        default=None, description="When the debtor withdrew it; now when not given."
    )
    evidence: str = Field(
        min_length=1,
        max_length=2000,
        description="How the debtor withdrew it.",
        examples=["asked on the call of 2026-11-05, recording 8841"],
    )


class AuthorisedChannel(BaseModel):
    channel: str
    authorised_at: datetime = Field(description="When the debtor gave it.")
    evidence: str
    source: str = Field(description="`api` (recorded here) or `import` (a portfolio attribute).")
    recorded_at: datetime


class AuthorisationChange(BaseModel):
    channel: str
    change: str = Field(description="`authorised` or `revoked`.")
    source: str = Field(description="`api` or `import`.")
    evidence: str
    effective_at: datetime = Field(description="When the debtor gave or withdrew it.")
    recorded_at: datetime


class Authorisations(BaseModel):
    debtor_id: str
    channels: list[AuthorisedChannel] = Field(
        description="Channels authorised now. Empty: under a policy that requires "
        "authorisation (Colombia), the debtor is contacted on no channel."
    )
    history: list[AuthorisationChange] = Field(description="Every grant and revocation, in order.")


def _in_the_past(field: str, instant: datetime, now: datetime) -> None:
    if instant > now:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={"errors": [f"{field}: {instant.isoformat()} is in the future"]},
        )


async def _authorisations(request: Request, tenant_id: str, debtor_id: str) -> Authorisations:
    async with _service(request).unit_of_work() as uow:
        current = await uow.repo.authorisations_of(tenant_id, debtor_id)
        history = await uow.repo.authorisation_log(tenant_id, debtor_id)
    return Authorisations(
        debtor_id=debtor_id,
        channels=[AuthorisedChannel.model_validate(row) for row in current],
        history=[AuthorisationChange.model_validate(row) for row in history],
    )


@router.get(
    "/debtors/{debtor_id}/authorised-channels",
    response_model=Authorisations,
    summary="The channels the debtor authorised, and every grant and revocation",
)
async def get_authorisations(
    request: Request, tenant_id: TenantId, debtor_id: str
) -> Authorisations:
    return await _authorisations(request, tenant_id, debtor_id)


@router.post(
    "/debtors/{debtor_id}/authorised-channels",
    response_model=Authorisations,
    summary="Record channels the debtor authorised, with when and how (renews a channel's evidence)",
)
async def authorise_channels(
    request: Request, tenant_id: TenantId, debtor_id: str, body: AuthorisationIn
) -> Authorisations:
    now = _now(request)
    _in_the_past("authorised_at", body.authorised_at, now)
    async with _service(request).unit_of_work() as uow:
        await authorisations.authorise(
            uow,
            tenant_id,
            debtor_id,
            body.channels,
            body.authorised_at,
            body.evidence,
            AuthorisationSource.API,
            now,
        )
        await uow.commit()
    return await _authorisations(request, tenant_id, debtor_id)


@router.post(
    "/debtors/{debtor_id}/authorised-channels/{channel}/revoke",
    response_model=Authorisations,
    summary="The debtor withdrew a channel: no action on it is allowed from now on, and no later "
    "import grants it again",
)
async def revoke_channel(
    request: Request, tenant_id: TenantId, debtor_id: str, channel: str, body: RevocationIn
) -> Authorisations:
    try:
        known = _authorisable(parse_channel(channel))
    except ValueError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"errors": [f"channel: {error}"]}
        ) from None
    now = _now(request)
    revoked_at = body.revoked_at or now
    _in_the_past("revoked_at", revoked_at, now)
    async with _service(request).unit_of_work() as uow:
        await authorisations.revoke(
            uow,
            tenant_id,
            debtor_id,
            known,
            revoked_at,
            body.evidence,
            AuthorisationSource.API,
            now,
        )
        await uow.commit()
    return await _authorisations(request, tenant_id, debtor_id)

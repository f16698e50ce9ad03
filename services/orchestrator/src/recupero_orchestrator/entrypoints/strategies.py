"""Tenant-scoped API for strategies, champion/challenger variants and their results (with what
their contacts cost at the tenant's channel prices), contact policy overrides, opt-outs and holds,
and why a debtor was (or was not) contacted."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, HTTPException, Request, status
from pydantic import BaseModel, Field, ValidationError

from recupero_events import Money
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.channels import ChannelField, ContactChannel
from recupero_orchestrator.domain.contact_policy import (
    HoldKind,
    LooserThanCountryDefault,
    TenantPolicyOverride,
    default_policy_for,
    tighten,
)
from recupero_orchestrator.domain.costs import (
    DEFAULT_CHANNEL_COSTS,
    ChannelCosts,
    cost_per_collected,
)
from recupero_orchestrator.domain.strategies import (
    SegmentStrategies,
    StrategyInvalid,
    parse_strategy,
    wilson_interval,
)
from recupero_orchestrator.handlers import Clock
from recupero_runtime.auth import TenantId
from recupero_runtime.db import Work
from recupero_runtime.service import Service

router = APIRouter(prefix="/v1")


def _service(request: Request) -> Service[OrchestratorRepository]:
    service: Service[OrchestratorRepository] = request.app.state.service
    return service


def _now(request: Request) -> datetime:
    clock: Clock = request.app.state.clock
    return clock()


def _invalid(errors: list[str]) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"errors": errors})


def _pydantic_errors(error: ValidationError) -> list[str]:
    return [
        ".".join(str(part) for part in detail["loc"]) + ": " + detail["msg"]
        for detail in error.errors()
    ]


# --- Strategies -----------------------------------------------------------------------------------


class StrategyVersion(BaseModel):
    strategy_id: str
    version: int
    status: str = Field(description="`draft`, `active` or `retired`.")
    document: dict[str, Any]
    created_at: datetime
    activated_at: datetime | None


@router.put(
    "/strategies/{strategy_id}/versions/{version}",
    response_model=StrategyVersion,
    tags=["strategies"],
    summary="Store a strategy version as a draft (validated; 422 names each problem's path)",
)
async def put_strategy_version(
    request: Request,
    tenant_id: TenantId,
    strategy_id: str,
    version: int,
    document: Annotated[dict[str, Any], Body(description="The strategy document (see the docs).")],
) -> StrategyVersion:
    try:
        strategy = parse_strategy(document)
    except StrategyInvalid as invalid:
        raise _invalid(list(invalid.errors)) from None
    mismatches = [
        f"{field}: {given!r} does not match the URL's {expected!r}"
        for field, given, expected in (
            ("strategy_id", strategy.strategy_id, strategy_id),
            ("version", strategy.version, version),
        )
        if given != expected
    ]
    if mismatches:
        raise _invalid(mismatches)
    stored = strategy.model_dump(mode="json")
    async with _service(request).unit_of_work() as uow:
        existing = await uow.repo.strategy_version(tenant_id, strategy_id, version)
        if existing is None:
            await uow.repo.add_strategy_version(tenant_id, strategy_id, version, stored)
        elif existing["document"] != stored:
            if existing["status"] != "draft":
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"{strategy.reference} was {existing['status']}: a version in use never "
                    "changes; store a new version instead",
                )
            await uow.repo.replace_draft(tenant_id, strategy_id, version, stored)
        await uow.commit()
        row = await uow.repo.strategy_version(tenant_id, strategy_id, version)
    assert row is not None
    return StrategyVersion.model_validate(row)


@router.get(
    "/strategies",
    response_model=list[StrategyVersion],
    tags=["strategies"],
    summary="Every version of the tenant's strategies",
)
async def list_strategies(
    request: Request, tenant_id: TenantId, strategy_id: str | None = None
) -> list[StrategyVersion]:
    async with _service(request).unit_of_work() as uow:
        rows = await uow.repo.strategy_versions_of(tenant_id, strategy_id)
    return [StrategyVersion.model_validate(row) for row in rows]


@router.post(
    "/strategies/{strategy_id}/versions/{version}/activate",
    response_model=StrategyVersion,
    tags=["strategies"],
    summary="Make a version the active one (debtors entering a segment from now on get it)",
)
async def activate_strategy(
    request: Request, tenant_id: TenantId, strategy_id: str, version: int
) -> StrategyVersion:
    async with _service(request).unit_of_work() as uow:
        if await uow.repo.strategy_version(tenant_id, strategy_id, version) is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no strategy {strategy_id}@{version} to activate"
            )
        await uow.repo.activate_strategy(tenant_id, strategy_id, version, _now(request))
        await uow.commit()
        row = await uow.repo.strategy_version(tenant_id, strategy_id, version)
    assert row is not None
    return StrategyVersion.model_validate(row)


# --- Segment variants (champion / challenger) -----------------------------------------------------


class VariantsIn(BaseModel):
    variants: list[dict[str, Any]] = Field(
        description="Strategy variants with the percentage of debtors each gets; adds up to 100.",
        examples=[[{"strategy_id": "early-digital", "percent": 70}]],
    )


@router.put(
    "/segments/{segment}/variants",
    response_model=SegmentStrategies,
    tags=["strategies"],
    summary="Set the strategy variants a segment runs (debtors keep the variant they got)",
)
async def put_variants(
    request: Request, tenant_id: TenantId, segment: str, body: VariantsIn
) -> SegmentStrategies:
    try:
        split = SegmentStrategies.model_validate({"segment": segment, "variants": body.variants})
    except ValidationError as error:
        raise _invalid(_pydantic_errors(error)) from None
    async with _service(request).unit_of_work() as uow:
        known = {row["strategy_id"] for row in await uow.repo.strategy_versions_of(tenant_id, None)}
        unknown = [
            f"variants.{index}.strategy_id: no strategy {variant.strategy_id!r}"
            for index, variant in enumerate(split.variants)
            if variant.strategy_id not in known
        ]
        if unknown:
            raise _invalid(unknown)
        await uow.repo.replace_variants(
            tenant_id, segment, [(v.strategy_id, v.percent) for v in split.variants]
        )
        await uow.commit()
    return split


class Rate(BaseModel):
    successes: int
    trials: int
    rate: float
    low: float = Field(description="Lower bound of the Wilson score interval.")
    high: float = Field(description="Upper bound of the Wilson score interval.")
    confidence: float


class MoneyOut(BaseModel):
    amount_minor: int
    currency: str


class VariantResult(BaseModel):
    strategy_id: str
    debtors: int = Field(description="Debtors assigned to the variant in this segment.")
    contacts: int = Field(description="Contacts made since assignment.")
    collected: list[MoneyOut] = Field(description="Payments since assignment, per currency.")
    cure_rate: Rate = Field(description="Share of debtors whose case closed settled.")
    contact_rate: Rate = Field(description="Share of debtors contacted at least once.")
    promise_kept_rate: Rate = Field(description="Kept promises over promises made.")
    promises_made: int
    contacts_by_channel: dict[str, int] = Field(
        description="Contacts since assignment, per channel."
    )
    cost: MoneyOut = Field(
        description="What those contacts cost at the tenant's channel prices (`/v1/channel-costs`)."
    )
    cost_per_collected: float | None = Field(
        description="Cost per unit of money collected in the cost's currency (e.g. 0.02: two "
        "cents per peso); null when nothing was collected in that currency."
    )


@router.get(
    "/segments/{segment}/variants/results",
    response_model=list[VariantResult],
    tags=["strategies"],
    summary="Per-variant results with 95% Wilson intervals",
)
async def variant_results(
    request: Request, tenant_id: TenantId, segment: str, confidence: float = 0.95
) -> list[VariantResult]:
    if not 0 < confidence < 1:
        raise _invalid(["confidence: must be between 0 and 1"])
    async with _service(request).unit_of_work() as uow:
        rows = await uow.repo.variant_results(tenant_id, segment)
        by_channel: dict[str, dict[str, int]] = {}
        for strategy_id, channel, contacts in await uow.repo.variant_contacts_by_channel(
            tenant_id, segment
        ):
            by_channel.setdefault(strategy_id, {})[channel] = contacts
        prices = await channel_costs_of(uow, tenant_id)

    def rate(successes: int, trials: int) -> Rate:
        estimate = wilson_interval(successes, trials, confidence)
        return Rate.model_validate(estimate, from_attributes=True)

    def costed(row: dict[str, Any]) -> dict[str, Any]:
        contacts = by_channel.get(row["strategy_id"], {})
        cost = prices.cost_of({ContactChannel(c): n for c, n in contacts.items()})
        collected = [Money.model_validate(money) for money in row["collected"]]
        return {
            "contacts_by_channel": contacts,
            "cost": MoneyOut.model_validate(cost, from_attributes=True),
            "cost_per_collected": cost_per_collected(cost, collected),
        }

    return [
        VariantResult(
            **costed(row),
            strategy_id=row["strategy_id"],
            debtors=row["debtors"],
            contacts=int(row["contacts"]),
            collected=[MoneyOut.model_validate(money) for money in row["collected"]],
            cure_rate=rate(row["cured"], row["debtors"]),
            contact_rate=rate(row["contacted"], row["debtors"]),
            promise_kept_rate=rate(int(row["promises_kept"]), int(row["promises_made"])),
            promises_made=int(row["promises_made"]),
        )
        for row in rows
    ]


# --- Channel costs --------------------------------------------------------------------------------


async def channel_costs_of(uow: Work[OrchestratorRepository], tenant_id: str) -> ChannelCosts:
    """The tenant's prices, or the documented defaults until it sets its own."""
    row = await uow.repo.channel_costs(tenant_id)
    return DEFAULT_CHANNEL_COSTS if row is None else ChannelCosts.model_validate(row)


class ChannelCostsOut(ChannelCosts):
    is_default: bool = Field(description="True while the tenant has not set its own prices.")


@router.get(
    "/channel-costs",
    response_model=ChannelCostsOut,
    tags=["strategies"],
    summary="The price of one contact attempt per channel (the defaults until the tenant sets its own)",
)
async def get_channel_costs(request: Request, tenant_id: TenantId) -> ChannelCostsOut:
    async with _service(request).unit_of_work() as uow:
        own = await uow.repo.channel_costs(tenant_id)
        costs = await channel_costs_of(uow, tenant_id)
    return ChannelCostsOut(**costs.model_dump(), is_default=own is None)


@router.put(
    "/channel-costs",
    response_model=ChannelCostsOut,
    tags=["strategies"],
    summary="Set the tenant's price per contact attempt for every channel (one currency)",
)
async def put_channel_costs(
    request: Request, tenant_id: TenantId, body: dict[str, Any]
) -> ChannelCostsOut:
    try:
        costs = ChannelCosts.model_validate(body)
    except ValidationError as error:
        raise _invalid(_pydantic_errors(error)) from None
    stored = costs.model_dump(mode="json")
    async with _service(request).unit_of_work() as uow:
        await uow.repo.save_channel_costs(tenant_id, stored["currency"], stored["per_contact"])
        await uow.commit()
    return ChannelCostsOut(**costs.model_dump(), is_default=False)


# --- Contact policy -------------------------------------------------------------------------------


@router.put(
    "/contact-policy/{country}",
    tags=["contact policy"],
    summary="Tighten a country's contact rules for this tenant (422 if looser than the default)",
)
async def put_policy_override(
    request: Request,
    tenant_id: TenantId,
    country: str,
    document: Annotated[dict[str, Any], Body(description="A tenant override (see the docs).")],
) -> dict[str, Any]:
    try:
        override = TenantPolicyOverride.model_validate({**document, "country": country})
        effective = tighten(default_policy_for(country), override, tenant_id)
    except ValidationError as error:
        raise _invalid(_pydantic_errors(error)) from None
    except LooserThanCountryDefault as looser:
        raise _invalid(list(looser.problems)) from None
    async with _service(request).unit_of_work() as uow:
        await uow.repo.save_policy_override(
            tenant_id, country, override.model_dump(mode="json", exclude_unset=True)
        )
        await uow.commit()
    return effective.model_dump(mode="json")


class OptOutIn(BaseModel):
    channel: ChannelField


class HoldIn(BaseModel):
    kind: HoldKind
    reason: str = Field(min_length=1)
    until: datetime | None = Field(default=None, description="Open-ended when null.")


@router.post(
    "/debtors/{debtor_id}/opt-outs",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["contact policy"],
    summary="The debtor opted out of a channel",
)
async def add_opt_out(
    request: Request, tenant_id: TenantId, debtor_id: str, body: OptOutIn
) -> None:
    async with _service(request).unit_of_work() as uow:
        await uow.repo.add_opt_out(tenant_id, debtor_id, body.channel.value, _now(request))
        await uow.commit()


@router.post(
    "/debtors/{debtor_id}/holds",
    status_code=status.HTTP_201_CREATED,
    tags=["contact policy"],
    summary="Stop contact (do_not_contact) or collection (dispute, hardship) for a debtor",
)
async def add_hold(
    request: Request, tenant_id: TenantId, debtor_id: str, body: HoldIn
) -> dict[str, UUID]:
    now = _now(request)
    if body.until is not None and body.until <= now:
        raise _invalid(["until: must be in the future"])
    async with _service(request).unit_of_work() as uow:
        hold_id = await uow.repo.add_hold(
            tenant_id, debtor_id, body.kind.value, now, body.until, body.reason
        )
        await uow.commit()
    return {"hold_id": hold_id}


class RuleHitOut(BaseModel):
    rule_id: str
    reason: str


class ContactDecision(BaseModel):
    action_id: UUID | None
    action_key: str | None = Field(description="The planner's key of the action.")
    channel: str | None
    verdict: Literal["allowed", "moved", "dropped", "skipped", "cancelled"]
    rule_id: str = Field(description="The rule that decided, e.g. `co.contact-hours`.")
    reason: str
    trail: list[RuleHitOut] = Field(description="Every rule that pushed the action, in order.")
    policy_id: str | None
    requested_at: datetime | None
    moved_to: datetime | None
    decided_at: datetime


@router.get(
    "/debtors/{debtor_id}/contact-decisions",
    response_model=list[ContactDecision],
    tags=["contact policy"],
    summary="Why a debtor was or was not contacted, action by action",
)
async def contact_decisions(
    request: Request, tenant_id: TenantId, debtor_id: str
) -> list[ContactDecision]:
    async with _service(request).unit_of_work() as uow:
        rows = await uow.repo.decisions_of(tenant_id, debtor_id)
    return [ContactDecision.model_validate(row) for row in rows]

"""Figures supervisors ask for, tenant-wide: the promise-kept rate by period and source, and what
the contact policy decided and why. (Cost per variant sits with the variants' results.)"""

from collections import defaultdict
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from recupero_orchestrator.domain.strategies import wilson_interval
from recupero_orchestrator.entrypoints.strategies import Rate, _invalid, _service
from recupero_runtime.auth import TenantId

router = APIRouter(prefix="/v1")


# --- Promise-kept rate ----------------------------------------------------------------------------


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class PromiseSource(StrEnum):
    PORTAL = "portal"
    CHATBOT = "chatbot"
    AGENT = "agent"
    IVR = "ivr"


class PromiseFigures(BaseModel):
    period_start: datetime | None = Field(
        description="Start (UTC) of the registration period; null without `period`."
    )
    source: str = Field(description="`portal`, `chatbot`, `agent`, `ivr`, or `all`.")
    made: int = Field(description="Promises registered (replaced ones included).")
    kept: int
    partially_kept: int
    broken: int
    open: int = Field(description="Not judged yet: before their deadline and not paid in full.")
    replaced: int = Field(description="Superseded by a newer promise of the same debtor.")
    kept_rate: Rate = Field(
        description="Kept over judged (kept + partially kept + broken); open and replaced "
        "promises are not counted."
    )


_COUNTS = ("made", "kept", "partially_kept", "broken", "pending", "replaced")


@router.get(
    "/promises/kept-rate",
    response_model=list[PromiseFigures],
    tags=["figures"],
    summary="Promise-kept rate per source (and over all sources), optionally per period",
)
async def promise_kept_rate(
    request: Request,
    tenant_id: TenantId,
    registered_from: Annotated[datetime | None, Query(alias="from")] = None,
    registered_before: Annotated[datetime | None, Query(alias="to")] = None,
    period: Period | None = None,
    source: PromiseSource | None = None,
    confidence: float = 0.95,
) -> list[PromiseFigures]:
    """Promises are counted by when they were registered, `from` included and `to` excluded."""
    problems = [
        f"{name}: must be timezone-aware"
        for name, value in (("from", registered_from), ("to", registered_before))
        if value is not None and value.utcoffset() is None
    ]
    if not 0 < confidence < 1:
        problems.append("confidence: must be between 0 and 1")
    if problems:
        raise _invalid(problems)
    async with _service(request).unit_of_work() as uow:
        rows = await uow.repo.promise_figures(
            tenant_id,
            registered_from,
            registered_before,
            None if period is None else period.value,
            None if source is None else source.value,
        )
    # Each period's sources, then all of them together.
    totals: dict[datetime | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_COUNTS, 0))
    grouped: list[tuple[datetime | None, str, dict[str, int]]] = []
    for row in rows:
        start = row.get("period_start")
        counts = {key: int(row[key]) for key in _COUNTS}
        grouped.append((start, row["source"], counts))
        for key in _COUNTS:
            totals[start][key] += counts[key]
    grouped += [(start, "all", counts) for start, counts in totals.items()]

    def figures(start: datetime | None, source_name: str, counts: dict[str, int]) -> PromiseFigures:
        judged = counts["kept"] + counts["partially_kept"] + counts["broken"]
        estimate = wilson_interval(counts["kept"], judged, confidence)
        return PromiseFigures(
            period_start=start,
            source=source_name,
            made=counts["made"],
            kept=counts["kept"],
            partially_kept=counts["partially_kept"],
            broken=counts["broken"],
            open=counts["pending"],
            replaced=counts["replaced"],
            kept_rate=Rate.model_validate(estimate, from_attributes=True),
        )

    order = {name: n for n, name in enumerate([*(s.value for s in PromiseSource), "all"])}
    grouped.sort(key=lambda g: (g[0] is not None, g[0] or datetime.min, order[g[1]]))
    return [figures(*group) for group in grouped]


# --- What the contact policy decided --------------------------------------------------------------


class RuleCount(BaseModel):
    verdict: Literal["allowed", "moved", "dropped", "skipped", "cancelled"]
    rule_id: str = Field(description="The rule that decided, e.g. `mx.contact-hours`.")
    decisions: int
    debtors: int = Field(description="Distinct debtors these decisions were about.")
    earliest_moved_to: datetime | None = Field(description="For `moved`: the earliest new slot.")


class DecisionSummary(BaseModel):
    debtors: int = Field(description="Debtors with at least one decision in the window.")
    rules: list[RuleCount]


@router.get(
    "/contact-decisions/summary",
    response_model=DecisionSummary,
    tags=["contact policy"],
    summary="Tenant-wide: how many actions each rule allowed, moved or dropped",
)
async def decision_summary(
    request: Request, tenant_id: TenantId, since: datetime | None = None
) -> DecisionSummary:
    if since is not None and since.utcoffset() is None:
        raise _invalid(["since: must be timezone-aware"])
    async with _service(request).unit_of_work() as uow:
        rules = await uow.repo.decision_summary(tenant_id, since)
        debtors = await uow.repo.debtors_decided(tenant_id, since)
    return DecisionSummary(debtors=debtors, rules=[RuleCount.model_validate(r) for r in rules])

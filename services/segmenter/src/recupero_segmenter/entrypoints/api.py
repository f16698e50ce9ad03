"""The segmenter's HTTP API: rule set versions (upload, list, activate, preview) and where a debtor
is and why. Translates HTTP to handlers and back; nothing else."""

from datetime import datetime
from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service
from recupero_segmenter import handlers
from recupero_segmenter.adapters.repository import SegmenterRepository, StoredRuleSet, facts_of
from recupero_segmenter.domain.defaults import DEFAULT_DOCUMENT, DEFAULT_RULESET_VERSION
from recupero_segmenter.domain.evaluation import local_date, propensity_inputs
from recupero_segmenter.domain.parsing import InvalidRuleSet, RuleError, parse_ruleset
from recupero_segmenter.domain.propensity import propensity
from recupero_segmenter.domain.rules import FIELDS, RuleSet
from recupero_segmenter.settings import SegmenterSettings

router = APIRouter(prefix="/v1", tags=["segments"])

RULESET_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A rule set document in YAML or JSON (see docs/segmentation.md).",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


class RuleProblem(BaseModel):
    path: str = Field(description="Where in the document, e.g. `segments[3].when.any[1].field`.")
    message: str


class RuleSetRejected(BaseModel):
    detail: list[RuleProblem]


class RuleSetVersion(BaseModel):
    version: str = Field(description="Version label, `v<n>`; `default-1` for the built-in set.")
    status: str = Field(description="draft, active, retired (or builtin for the default).")
    description: str | None
    segments: list[str] = Field(description="Segment names in evaluation order, default last.")
    created_at: datetime | None
    activated_at: datetime | None
    retired_at: datetime | None
    resegmented: int = Field(0, description="Debtors evaluated by the activation so far.")
    changed: int = Field(0, description="Debtors whose segment, stage or strategy changed.")
    resegment_finished_at: datetime | None = None
    document: dict[str, Any]


class ActivationResult(BaseModel):
    version: str
    evaluated: int = Field(description="Debtors evaluated with the new version.")
    changed: int = Field(description="Debtors moved (each got a `debtor-segmented` event).")
    finished: bool
    seconds: float


class SegmentPreview(BaseModel):
    segment: str
    stage: str
    strategy: str | None
    debtors: int
    balance: dict[str, int] = Field(description="Outstanding balance per currency, minor units.")


class PreviewResult(BaseModel):
    debtors: int
    segments: list[SegmentPreview] = Field(description="Proposed segments, default last.")
    current: dict[str, int] = Field(description="Debtors per current segment.")
    movements: dict[str, dict[str, int]] = Field(
        description="Debtors moving from each current segment (rows) to each proposed one."
    )
    seconds: float


class PlacementRecord(BaseModel):
    segment: str
    stage: str
    strategy: str | None = None
    previous_segment: str | None = None
    previous_stage: str | None = None
    days_past_due: int
    balance_minor: int = Field(description="Outstanding balance in minor units when placed.")
    ruleset_version: str
    reason: str = Field(description="Which rule put the debtor there and why.")
    trigger: str = Field(
        description="What made the segmenter look: event topic, activation, aging."
    )
    evaluated_at: datetime


class PropensityView(BaseModel):
    score: int = Field(description="0 to 100: the sum of `points`, clamped.")
    inputs: dict[str, int | None]
    points: dict[str, int]


class DebtorView(BaseModel):
    debtor_id: str
    segment: str | None
    stage: str | None
    strategy: str | None
    ruleset_version: str | None
    facts: dict[str, int | str | None] = Field(description="Every field value rules see today.")
    propensity: PropensityView


class FieldDoc(BaseModel):
    name: str
    type: str
    description: str
    values: list[str]


def _service(request: Request) -> Service[SegmenterRepository]:
    service: Service[SegmenterRepository] = request.app.state.service
    return service


def _clock(request: Request) -> handlers.Clock:
    clock: handlers.Clock = request.app.state.clock
    return clock


def _rules(request: Request) -> handlers.RuleBook:
    rules: handlers.RuleBook = request.app.state.rules
    return rules


def _rejected(errors: list[RuleError]) -> JSONResponse:
    return JSONResponse(
        RuleSetRejected(
            detail=[RuleProblem(path=e.path, message=e.message) for e in errors]
        ).model_dump(),
        status_code=422,
    )


async def _read_document(request: Request) -> tuple[Any, str] | JSONResponse:
    raw = await request.body()
    try:
        source = raw.decode("utf-8")
        # JSON is YAML; safe_load builds only plain values, never objects.
        return yaml.safe_load(source), source
    except UnicodeDecodeError:
        return _rejected([RuleError("", "the document is not UTF-8 text")])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return _rejected([RuleError("", f"not valid YAML or JSON: {where}{problem}")])


def _version_view(stored: StoredRuleSet, ruleset: RuleSet) -> RuleSetVersion:
    return RuleSetVersion(
        version=stored.label,
        status=stored.status,
        description=stored.description,
        segments=[target.name for target in ruleset.targets()],
        created_at=stored.created_at,
        activated_at=stored.activated_at,
        retired_at=stored.retired_at,
        resegmented=stored.resegment_evaluated,
        changed=stored.resegment_changed,
        resegment_finished_at=stored.resegment_finished_at,
        document=stored.document,
    )


def _default_view() -> RuleSetVersion:
    ruleset = parse_ruleset(DEFAULT_DOCUMENT)
    return RuleSetVersion(
        version=DEFAULT_RULESET_VERSION,
        status="builtin",
        description=ruleset.description,
        segments=[target.name for target in ruleset.targets()],
        created_at=None,
        activated_at=None,
        retired_at=None,
        document=DEFAULT_DOCUMENT,
    )


def _parse_version(version: str) -> int:
    number = version.removeprefix("v")
    if not number.isdigit():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule set version {version!r}")
    return int(number)


@router.put(
    "/rulesets",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleSetVersion,
    responses={422: {"model": RuleSetRejected, "description": "Every problem, with its path."}},
    summary="Upload a new rule set version (draft); validated, never applied until activated",
    openapi_extra=RULESET_BODY,
)
async def upload_ruleset(request: Request, tenant_id: TenantId) -> RuleSetVersion | JSONResponse:
    read = await _read_document(request)
    if isinstance(read, JSONResponse):
        return read
    document, source = read
    try:
        ruleset = parse_ruleset(document)
    except InvalidRuleSet as invalid:
        return _rejected(invalid.errors)
    service = _service(request)
    async with service.unit_of_work(request.state.correlation_id) as uow:
        version = await uow.repo.add_ruleset(tenant_id, document, source, _clock(request)())
        stored = await uow.repo.ruleset(tenant_id, version)
        await uow.commit()
    assert stored is not None
    return _version_view(stored, ruleset)


@router.get(
    "/rulesets", response_model=list[RuleSetVersion], summary="Rule set versions, newest first"
)
async def list_rulesets(request: Request, tenant_id: TenantId) -> list[RuleSetVersion]:
    rules = _rules(request)
    async with _service(request).unit_of_work() as uow:
        stored = await uow.repo.rulesets_of(tenant_id)
    return [_version_view(s, rules.parsed(s)) for s in stored] + [_default_view()]


@router.get(
    "/rulesets/active",
    response_model=RuleSetVersion,
    summary="The rule set in force (the built-in default until one is activated)",
)
async def active_ruleset(request: Request, tenant_id: TenantId) -> RuleSetVersion:
    async with _service(request).unit_of_work() as uow:
        stored = await uow.repo.active_ruleset(tenant_id)
    if stored is None:
        return _default_view()
    return _version_view(stored, _rules(request).parsed(stored))


@router.post(
    "/rulesets/preview",
    response_model=PreviewResult,
    responses={422: {"model": RuleSetRejected}},
    summary="What a draft would do to today's portfolio, without applying it",
    openapi_extra=RULESET_BODY,
)
async def preview_ruleset(request: Request, tenant_id: TenantId) -> PreviewResult | JSONResponse:
    read = await _read_document(request)
    if isinstance(read, JSONResponse):
        return read
    try:
        ruleset = parse_ruleset(read[0])
    except InvalidRuleSet as invalid:
        return _rejected(invalid.errors)
    async with _service(request).unit_of_work() as uow:
        result = await handlers.preview(uow, tenant_id, ruleset, _clock(request)())
    return PreviewResult(
        debtors=result.debtors,
        segments=[
            SegmentPreview(
                segment=s.segment,
                stage=s.stage,
                strategy=s.strategy,
                debtors=s.debtors,
                balance=s.balance,
            )
            for s in result.segments
        ],
        current=result.current,
        movements=result.movements,
        seconds=round(result.seconds, 3),
    )


@router.get("/rulesets/{version}", response_model=RuleSetVersion, summary="One rule set version")
async def get_ruleset(request: Request, tenant_id: TenantId, version: str) -> RuleSetVersion:
    if version == DEFAULT_RULESET_VERSION:
        return _default_view()
    async with _service(request).unit_of_work() as uow:
        stored = await uow.repo.ruleset(tenant_id, _parse_version(version))
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule set version {version!r}")
    return _version_view(stored, _rules(request).parsed(stored))


@router.post(
    "/rulesets/{version}/activate",
    response_model=ActivationResult,
    summary="Activate a version and re-segment the whole portfolio with it",
)
async def activate_ruleset(request: Request, tenant_id: TenantId, version: str) -> ActivationResult:
    service = _service(request)
    settings = service.settings
    assert isinstance(settings, SegmenterSettings)
    correlation_id = request.state.correlation_id
    try:
        report = await handlers.activate(
            lambda: service.unit_of_work(correlation_id),
            _rules(request),
            tenant_id,
            _parse_version(version),
            _clock(request),
            settings.activation_chunk_size,
            settings.activation_connections,
        )
    except handlers.RuleSetNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule set version {version!r}") from None
    return ActivationResult(
        version=report.version,
        evaluated=report.evaluated,
        changed=report.changed,
        finished=report.finished,
        seconds=round(report.seconds, 3),
    )


@router.get("/fields", response_model=list[FieldDoc], summary="Fields a rule may test")
async def fields() -> list[FieldDoc]:
    return [
        FieldDoc(
            name=spec.name,
            type=spec.kind.value,
            description=spec.description,
            values=list(spec.values),
        )
        for spec in FIELDS.values()
    ] + [
        FieldDoc(
            name="custom.<name>",
            type="text",
            description="Any custom attribute the import kept.",
            values=[],
        )
    ]


@router.get(
    "/debtors/{debtor_id}",
    response_model=DebtorView,
    summary="Where a debtor is, every fact the rules see, and the propensity score with its sum",
)
async def debtor_view(request: Request, tenant_id: TenantId, debtor_id: str) -> DebtorView:
    async with _service(request).unit_of_work() as uow:
        debtor = await uow.repo.debtor(tenant_id, debtor_id)
    if debtor is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"debtor {debtor_id!r} is not known")
    now = _clock(request)()
    facts = handlers.describe_facts(debtor, now)
    inputs = propensity_inputs(facts_of(debtor), local_date(now, debtor["time_zone"]))
    scored = propensity(inputs)
    return DebtorView(
        debtor_id=debtor_id,
        segment=debtor["segment"],
        stage=debtor["stage"],
        strategy=debtor["strategy"],
        ruleset_version=debtor["ruleset_version"],
        facts=facts,
        propensity=PropensityView(
            score=scored.score,
            inputs={
                "days_past_due": inputs.days_past_due,
                "promises_kept": inputs.promises_kept,
                "promises_broken": inputs.promises_broken,
                "payments_count": inputs.payments_count,
                "days_since_last_payment": inputs.days_since_last_payment,
                "actions_count": inputs.actions_count,
            },
            points=scored.points,
        ),
    )


@router.get(
    "/debtors/{debtor_id}/segments",
    response_model=list[PlacementRecord],
    summary="Segment history of a debtor, newest first",
)
async def segment_history_of(
    request: Request, tenant_id: TenantId, debtor_id: str
) -> list[PlacementRecord]:
    async with _service(request).unit_of_work() as uow:
        rows = [
            PlacementRecord.model_validate(row)
            for row in await uow.repo.history(tenant_id, debtor_id)
        ]
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"debtor {debtor_id!r} has no placements")
    return rows

"""Tenant-scoped HTTP API: the tenant's templates (upload, read, preview) and the print queue of
letters (list, PDF, tracking). Every route takes the tenant from its API key; a template or letter
of another tenant is a 404, exactly as one that does not exist."""

from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field

from recupero_events import Channel, MessageStatusChanged
from recupero_notifier.adapters.letters import Letter
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_notifier.adapters.templates import (
    PARTS,
    JinjaTemplates,
    TemplateProblem,
    TemplateSource,
    problems_in,
    render_source,
)
from recupero_notifier.domain.letters import (
    PUBLISHED_STATUS,
    LetterStatus,
    LetterUpdateRefused,
    next_state,
)
from recupero_notifier.domain.locales import UnsupportedLocale, template_key
from recupero_notifier.domain.messages import ReminderContext, UnknownTemplate
from recupero_runtime.auth import TenantId
from recupero_runtime.service import Service

TemplateName = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Template name, as strategies' steps name it.",
        examples=["first-reminder"],
    ),
]
LocaleKey = Annotated[
    str,
    Path(
        description="A locale (es-MX, es-AR, es-CO, es-PE, es-CL, en-US) or a language (es, en): "
        "a language's template serves each of its locales the tenant has none for.",
        examples=["es-AR"],
    ),
]
PartsField = Annotated[
    dict[str, str],
    Field(
        description=f"Jinja2 text per part: {', '.join(PARTS)}. `letter.txt` is optional.",
        examples=[
            {"subject.txt": "Recordatorio: {{ amount_due }}", "short.txt": "Hola {{ name }}"}
        ],
    ),
]


class ProblemOut(BaseModel):
    part: str = Field(examples=["body.html"])
    line: int | None = Field(default=None, examples=[3])
    variable: str | None = Field(default=None, examples=["nmae"])
    did_you_mean: str | None = Field(default=None, examples=["name"])
    message: str


class TemplateIn(BaseModel):
    parts: PartsField


class TemplateOut(BaseModel):
    name: str
    locale: str = Field(description="The locale or language it is stored under.")
    origin: str = Field(description="`tenant` (uploaded) or `shipped` (Recupero's default).")
    version: int = Field(description="The tenant's version; 0 for a shipped template.")
    parts: dict[str, str]


class StoredVersion(BaseModel):
    name: str
    locale: str
    version: int
    active: bool = Field(description="The highest version of a name and locale is the one used.")
    created_at: datetime


class PreviewIn(BaseModel):
    locale: str = Field(default="es-MX", examples=["es-AR"])
    debtor_id: str | None = Field(
        default=None,
        description="A debtor of the tenant whose debt the notifier knows; absent: a sample "
        "debtor.",
    )
    parts: PartsField | None = Field(
        default=None, description="A draft to render instead of the template in use."
    )


class PreviewOut(BaseModel):
    name: str
    locale: str
    origin: str = Field(description="`draft`, `tenant` or `shipped`.")
    version: int | None
    context: dict[str, Any] = Field(description="The variables as the template saw them.")
    subject: str
    text: str
    html: str
    short: str
    voice: str
    letter: str | None


class LetterOut(Letter):
    pdf_url: str = Field(examples=["/v1/letters/0b6f3c1e-…-9d2a.pdf"])


class TrackingIn(BaseModel):
    status: LetterStatus = Field(
        description="`printed`, `posted` (needs a tracking number), `delivered` or `returned`."
    )
    tracking_number: str | None = Field(
        default=None, min_length=1, max_length=64, examples=["CD123456789AR"]
    )
    occurred_at: datetime | None = Field(
        default=None, description="When the post office saw it (aware); default: now."
    )
    detail: str | None = Field(
        default=None, max_length=200, description="E.g. why it was returned.", examples=["se mudó"]
    )


def _service(request: Request) -> Service[NotifierRepository]:
    service: Service[NotifierRepository] = request.app.state.service
    return service


def _key(locale: str) -> str:
    try:
        return template_key(locale)
    except UnsupportedLocale as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None


def _refuse(problems: list[TemplateProblem]) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail={
            "message": "; ".join(str(problem) for problem in problems),
            "errors": [
                ProblemOut(
                    part=problem.part,
                    line=problem.line,
                    variable=problem.variable,
                    did_you_mean=problem.did_you_mean,
                    message=problem.message,
                ).model_dump()
                for problem in problems
            ],
        },
    )


def _today() -> date:
    return datetime.now(UTC).date()


def _letter_out(letter: Letter) -> LetterOut:
    return LetterOut(**letter.model_dump(), pdf_url=f"/v1/letters/{letter.letter_id}.pdf")


def templates_and_letters_router(templates: JinjaTemplates, max_promise_days: int) -> APIRouter:
    router = APIRouter(prefix="/v1")

    # --- Templates ------------------------------------------------------------------------------

    @router.get(
        "/templates",
        response_model=list[StoredVersion],
        tags=["templates"],
        summary="Every version of the tenant's own templates",
    )
    async def list_templates(
        request: Request, tenant_id: TenantId, name: str | None = None
    ) -> list[StoredVersion]:
        async with _service(request).unit_of_work() as uow:
            rows = await uow.repo.template_versions_of(tenant_id, name)
        latest: set[tuple[str, str]] = set()
        out = []
        for row in rows:
            # Newest first per name and locale: the first seen is the one in use.
            active = (row["name"], row["locale"]) not in latest
            latest.add((row["name"], row["locale"]))
            out.append(
                StoredVersion(
                    name=row["name"],
                    locale=row["locale"],
                    version=row["version"],
                    active=active,
                    created_at=row["created_at"],
                )
            )
        return out

    async def _in_use(request: Request, tenant_id: str, name: str, locale: str) -> TemplateSource:
        async with _service(request).unit_of_work() as uow:
            try:
                return await templates.find(tenant_id, name, locale, uow.repo)
            except UnknownTemplate as unknown:
                raise HTTPException(status.HTTP_404_NOT_FOUND, str(unknown)) from None

    @router.get(
        "/templates/{name}/{locale}",
        response_model=TemplateOut,
        tags=["templates"],
        summary="The template a debtor in this locale gets: the tenant's for the locale, else "
        "for its language, else the shipped one",
    )
    async def template_in_use(
        request: Request, tenant_id: TenantId, name: TemplateName, locale: LocaleKey
    ) -> TemplateOut:
        source = await _in_use(request, tenant_id, name, _key(locale))
        return TemplateOut(
            name=name,
            locale=source.key,
            origin=source.origin,
            version=source.version,
            parts=dict(source.parts),
        )

    @router.post(
        "/templates/{name}/preview",
        response_model=PreviewOut,
        tags=["templates"],
        summary="Render the template in use (or a draft) for one of the tenant's debtors or a "
        "sample debtor: every part",
    )
    async def preview_template(
        request: Request,
        tenant_id: TenantId,
        name: TemplateName,
        preview: Annotated[PreviewIn, Body()],
    ) -> PreviewOut:
        locale = _key(preview.locale)
        now = datetime.now(UTC)
        if preview.parts is not None:
            problems = problems_in(preview.parts, now.date())
            if problems:
                raise _refuse(problems)
            source = TemplateSource(name, locale, preview.parts, version=-1)
        else:
            source = await _in_use(request, tenant_id, name, locale)
        if preview.debtor_id is None:
            context = ReminderContext.sample(locale, now.date())
        else:
            async with _service(request).unit_of_work() as uow:
                known = await uow.repo.debtor(tenant_id, preview.debtor_id, max_promise_days)
            if known is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"no debtor {preview.debtor_id!r} known"
                )
            context = ReminderContext.for_debtor(
                preview.debtor_id,
                known.facts,
                locale,
                templates.payment_link(tenant_id, preview.debtor_id),
                now,
            )
        rendered = render_source(source, context)
        return PreviewOut(
            name=name,
            locale=source.key,
            origin="draft" if preview.parts is not None else source.origin,
            version=None if preview.parts is not None else source.version,
            context=context.variables(),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            short=rendered.short,
            voice=rendered.voice,
            letter=rendered.letter,
        )

    # After the preview: `/templates/{name}/preview` is not a locale.
    @router.post(
        "/templates/{name}/{locale}",
        status_code=status.HTTP_201_CREATED,
        response_model=TemplateOut,
        tags=["templates"],
        summary="Upload a new version of a template for a locale or language (422 names each "
        "problem's part, line and variable; the version in use stays until one passes)",
    )
    async def upload_template(
        request: Request,
        tenant_id: TenantId,
        name: TemplateName,
        locale: LocaleKey,
        template: TemplateIn,
    ) -> TemplateOut:
        key = _key(locale)
        problems = problems_in(template.parts, _today())
        if problems:
            raise _refuse(problems)
        async with _service(request).unit_of_work() as uow:
            version = await uow.repo.add_template_version(tenant_id, name, key, template.parts)
            await uow.commit()
        return TemplateOut(
            name=name, locale=key, origin="tenant", version=version, parts=template.parts
        )

    # --- Letters --------------------------------------------------------------------------------

    @router.get(
        "/letters",
        response_model=list[LetterOut],
        tags=["letters"],
        summary="The tenant's letters, oldest first; `status=pending_print` is the print queue",
    )
    async def list_letters(
        request: Request,
        tenant_id: TenantId,
        letter_status: Annotated[LetterStatus | None, Query(alias="status")] = None,
    ) -> list[LetterOut]:
        async with _service(request).unit_of_work() as uow:
            found = await uow.repo.letters_of(tenant_id, letter_status)
        return [_letter_out(letter) for letter in found]

    @router.get(
        "/letters/{letter_id}.pdf",
        tags=["letters"],
        summary="The letter as a PDF, to print",
        response_class=Response,
        responses={200: {"content": {"application/pdf": {}}}},
    )
    async def letter_pdf(request: Request, tenant_id: TenantId, letter_id: UUID) -> Response:
        async with _service(request).unit_of_work() as uow:
            pdf = await uow.repo.letter_pdf(tenant_id, letter_id)
        if pdf is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no letter {letter_id}")
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"content-disposition": f'inline; filename="{letter_id}.pdf"'},
        )

    @router.post(
        "/letters/{letter_id}/tracking",
        response_model=LetterOut,
        tags=["letters"],
        summary="Record what happened to a letter: printed, posted with its tracking number, "
        "delivered or returned (the last two publish `message-status-changed`)",
    )
    async def track_letter(
        request: Request, tenant_id: TenantId, letter_id: UUID, tracking: TrackingIn
    ) -> LetterOut:
        at = tracking.occurred_at or datetime.now(UTC)
        if at.tzinfo is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "occurred_at needs a time zone offset"
            )
        async with _service(request).unit_of_work(request.state.correlation_id) as uow:
            letter = await uow.repo.letter(tenant_id, letter_id, for_update=True)
            if letter is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no letter {letter_id}")
            try:
                new_status, tracking_number = next_state(
                    letter.status, letter.tracking_number, tracking.status, tracking.tracking_number
                )
            except LetterUpdateRefused as refused:
                raise HTTPException(status.HTTP_409_CONFLICT, str(refused)) from None
            changed = (new_status, tracking_number) != (letter.status, letter.tracking_number)
            if changed:
                await uow.repo.update_letter(tenant_id, letter_id, new_status, tracking_number, at)
            published = PUBLISHED_STATUS.get(new_status)
            if changed and new_status != letter.status and published is not None:
                detail = f"letter {new_status.value}, tracking {tracking_number}"
                if tracking.detail:
                    detail += f": {tracking.detail}"
                uow.publish(
                    MessageStatusChanged(
                        tenant_id=tenant_id,
                        debtor_id=letter.debtor_id,
                        action_id=letter.action_id,
                        channel=Channel.LETTER,
                        status=published,
                        occurred_at=at,
                        detail=detail[:200],
                    )
                )
            await uow.commit()
            updated = await uow.repo.letter(tenant_id, letter_id)
        assert updated is not None
        return _letter_out(updated)

    return router

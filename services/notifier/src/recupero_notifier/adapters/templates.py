"""Message templates: Jinja2, shipped with the package per language or locale, overridden per
tenant and locale with versions stored in PostgreSQL (`adapters.template_store`).

A template has `subject.txt`, `body.txt` and `body.html` (email), `short.txt` (SMS and WhatsApp
session text), `voice.txt` (read aloud on a call) and, for printed letters, `letter.txt`. Shipped
ones live under `recupero_notifier/templates/<locale or language>/<name>/`.

Tenants upload templates, so they are untrusted code: they run in Jinja's immutable sandbox, HTML
is autoescaped (a debtor's name is data, never markup), and every variable a template uses must be
one the context documents (`domain.messages.CONTEXT_VARIABLES`). That is checked when a template
is uploaded (`problems_in`), so a typo is a 422 for the tenant, not a failed send to a debtor.
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib.resources import files
from typing import Protocol

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from recupero_events import ActionDue
from recupero_notifier.domain.locales import LANGUAGES, LOCALES, lookup_order, tenant_keys
from recupero_notifier.domain.messages import (
    CONTEXT_VARIABLES,
    ReminderContext,
    RenderedMessage,
    UnknownTemplate,
)

MESSAGE_PARTS = ("subject.txt", "body.txt", "body.html", "short.txt", "voice.txt")
LETTER_PART = "letter.txt"
PARTS = (*MESSAGE_PARTS, LETTER_PART)
# A template is a complete set: whatever channel an action names finds its part.
REQUIRED_PARTS = MESSAGE_PARTS


@dataclass(frozen=True, slots=True)
class TemplateSource:
    """One template's text, part by part, and where it came from."""

    name: str
    # The locale or language it is stored under (`es-AR`, `es`).
    key: str
    parts: Mapping[str, str]
    # 0 for a shipped template; a tenant's versions count from 1.
    version: int = 0

    @property
    def origin(self) -> str:
        return "shipped" if self.version == 0 else "tenant"


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """What is wrong with an uploaded template, and where."""

    part: str
    message: str
    line: int | None = None
    variable: str | None = None
    did_you_mean: str | None = None

    def __str__(self) -> str:
        where = self.part if self.line is None else f"{self.part} line {self.line}"
        return f"{where}: {self.message}"


class TemplateInvalid(ValueError):
    def __init__(self, problems: list[TemplateProblem]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


class TenantTemplates(Protocol):
    """A tenant's stored templates (`adapters.template_store.TemplateQueries`)."""

    async def active_template(
        self, tenant_id: str, name: str, keys: tuple[str, ...]
    ) -> TemplateSource | None: ...


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_TEXT = _environment(autoescape=False)
_HTML = _environment(autoescape=True)


def _environment_for(part: str) -> ImmutableSandboxedEnvironment:
    return _HTML if part.endswith(".html") else _TEXT


@lru_cache(maxsize=2048)
def _compiled(part: str, source: str) -> Template:
    # Compiling is the expensive step; the same text (shipped or a tenant's version) compiles once.
    return _environment_for(part).from_string(source)


def _first_use(tree: nodes.Template, variable: str) -> int | None:
    lines = [
        node.lineno
        for node in tree.find_all(nodes.Name)
        if node.name == variable and node.ctx == "load"
    ]
    return min(lines, default=None)


def problems_in(parts: Mapping[str, str], sample_day: date) -> list[TemplateProblem]:
    """Every reason these parts cannot be used as a template, each with its part (and line and
    variable where there is one); empty when they render for any debtor."""
    problems = [
        TemplateProblem(part, f"unknown part; a template has: {', '.join(PARTS)}")
        for part in parts
        if part not in PARTS
    ]
    problems += [
        TemplateProblem(part, f"missing; every template has {', '.join(REQUIRED_PARTS)}")
        for part in REQUIRED_PARTS
        if part not in parts
    ]
    known = sorted(CONTEXT_VARIABLES)
    for part in PARTS:
        if part not in parts:
            continue
        source = parts[part]
        environment = _environment_for(part)
        try:
            tree = environment.parse(source)
            environment.compile(tree)
        except TemplateSyntaxError as error:
            problems.append(TemplateProblem(part, error.message or str(error), line=error.lineno))
            continue
        unknown = sorted(meta.find_undeclared_variables(tree) - set(CONTEXT_VARIABLES))
        for variable in unknown:
            close = difflib.get_close_matches(variable, known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f" (available: {', '.join(known)})"
            problems.append(
                TemplateProblem(
                    part,
                    f"'{variable}' is not a variable templates can use{hint}",
                    line=_first_use(tree, variable),
                    variable=variable,
                    did_you_mean=close[0] if close else None,
                )
            )
        if unknown:
            continue
        # What parsing cannot see (`name.first`, a filter on the wrong type, a sandbox refusal):
        # the template must render for every locale's sample debtor.
        for locale in LOCALES:
            try:
                _compiled(part, source).render(
                    ReminderContext.sample(locale, sample_day).variables()
                )
            except TemplateError as error:
                problems.append(TemplateProblem(part, f"does not render for {locale}: {error}"))
                break
    return problems


class JinjaTemplates:
    """Finds an action's template (the tenant's, else the shipped one) and renders it."""

    def __init__(
        self,
        payment_link_url: str = "https://pagos.recupero.local/{tenant_id}/{debtor_id}",
        package: str = "recupero_notifier",
        directory: str = "templates",
    ) -> None:
        self._payment_link_url = payment_link_url
        self._shipped: dict[tuple[str, str], TemplateSource] = {}
        root = files(package).joinpath(directory)
        for key_dir in root.iterdir():
            if key_dir.name not in (*LOCALES, *LANGUAGES):
                continue
            for template_dir in key_dir.iterdir():
                parts = {
                    part: template_dir.joinpath(part).read_text(encoding="utf-8")
                    for part in PARTS
                    if template_dir.joinpath(part).is_file()
                }
                if all(part in parts for part in REQUIRED_PARTS):
                    source = TemplateSource(template_dir.name, key_dir.name, parts)
                    self._shipped[(template_dir.name, key_dir.name)] = source
        self.names = frozenset(name for name, _ in self._shipped)

    def payment_link(self, tenant_id: str, debtor_id: str) -> str:
        return self._payment_link_url.format(tenant_id=tenant_id, debtor_id=debtor_id)

    def shipped(self, name: str, locale: str) -> TemplateSource | None:
        return next(
            (
                self._shipped[(name, key)]
                for key in lookup_order(locale)
                if (name, key) in self._shipped
            ),
            None,
        )

    async def find(
        self, tenant_id: str, name: str, locale: str, stored: TenantTemplates
    ) -> TemplateSource:
        """The tenant's template for the locale, else for its language, else the shipped one
        for the locale, else for its language."""
        return self._tenants_else_shipped(
            await stored.active_template(tenant_id, name, tenant_keys(locale)), name, locale
        )

    def _tenants_else_shipped(
        self, tenants: TemplateSource | None, name: str, locale: str
    ) -> TemplateSource:
        source = tenants if tenants is not None else self.shipped(name, locale)
        if source is None:
            known = ", ".join(sorted(self.names))
            raise UnknownTemplate(
                f"no template {name!r} for {locale} (the tenant's or shipped: {known})"
            )
        return source

    def render_found(self, action: ActionDue, tenants: TemplateSource | None) -> RenderedMessage:
        """The action's message from the tenant's template already read (`tenants`, None when
        the tenant has none for the action's locale or language), else the shipped one."""
        source = self._tenants_else_shipped(tenants, action.template, action.contact.locale)
        payment_link = self.payment_link(action.tenant_id, action.debtor_id)
        return render_source(source, ReminderContext.for_action(action, payment_link))

    def render(self, name: str, context: ReminderContext, locale: str = "es-MX") -> RenderedMessage:
        """A shipped template (no tenant's overrides)."""
        source = self.shipped(name, locale)
        if source is None:
            known = ", ".join(sorted(self.names))
            raise UnknownTemplate(f"no template {name!r}; known templates: {known}")
        return render_source(source, context)


def render_source(source: TemplateSource, context: ReminderContext) -> RenderedMessage:
    variables = context.variables()

    def part(name: str) -> str:
        return _compiled(name, source.parts[name]).render(variables)

    return RenderedMessage(
        subject=part("subject.txt").strip(),
        text=part("body.txt"),
        html=part("body.html"),
        short=part("short.txt").strip(),
        voice=part("voice.txt").strip(),
        letter=part(LETTER_PART) if LETTER_PART in source.parts else None,
    )

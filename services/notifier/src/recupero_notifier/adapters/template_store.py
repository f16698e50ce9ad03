"""A tenant's templates in PostgreSQL: versions appended, the highest one in use. Every statement
is scoped by tenant: no tenant reads, lists or renders another's template."""

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_notifier.adapters.tables import template_versions
from recupero_notifier.adapters.templates import TemplateSource


class TemplateQueries:
    """Mixed into `NotifierRepository`: the template statements over its session."""

    session: AsyncSession

    async def active_template(
        self, tenant_id: str, name: str, keys: tuple[str, ...]
    ) -> TemplateSource | None:
        """The highest version stored under the first of `keys` (locale, then language) that
        the tenant has."""
        if not keys:
            return None
        preference = case(
            {key: position for position, key in enumerate(keys)}, value=template_versions.c.locale
        )
        row = (
            await self.session.execute(
                select(
                    template_versions.c.locale,
                    template_versions.c.version,
                    template_versions.c.parts,
                )
                .where(
                    template_versions.c.tenant_id == tenant_id,
                    template_versions.c.name == name,
                    template_versions.c.locale.in_(keys),
                )
                .order_by(preference, template_versions.c.version.desc())
                .limit(1)
            )
        ).one_or_none()
        if row is None:
            return None
        return TemplateSource(name, row.locale, row.parts, row.version)

    async def add_template_version(
        self, tenant_id: str, name: str, locale: str, parts: dict[str, str]
    ) -> int:
        """Store the next version; returns its number. Two uploads at once: one of them gets a
        primary-key conflict and is retried by the caller's client."""
        next_version = (
            select(func.coalesce(func.max(template_versions.c.version), 0) + 1)
            .where(
                template_versions.c.tenant_id == tenant_id,
                template_versions.c.name == name,
                template_versions.c.locale == locale,
            )
            .scalar_subquery()
        )
        version: int = await self.session.scalar(
            insert(template_versions)
            .values(
                tenant_id=tenant_id, name=name, locale=locale, version=next_version, parts=parts
            )
            .returning(template_versions.c.version)
        )
        return version

    async def template_versions_of(
        self, tenant_id: str, name: str | None = None
    ) -> list[dict[str, Any]]:
        """Every stored version of the tenant's templates, newest first per name and locale."""
        statement = select(
            template_versions.c.name,
            template_versions.c.locale,
            template_versions.c.version,
            template_versions.c.parts,
            template_versions.c.created_at,
        ).where(template_versions.c.tenant_id == tenant_id)
        if name is not None:
            statement = statement.where(template_versions.c.name == name)
        rows = await self.session.execute(
            statement.order_by(
                template_versions.c.name,
                template_versions.c.locale,
                template_versions.c.version.desc(),
            )
        )
        return [dict(row._mapping) for row in rows]

    async def template_version(
        self, tenant_id: str, name: str, locale: str, version: int
    ) -> tuple[dict[str, str], datetime] | None:
        row = (
            await self.session.execute(
                select(template_versions.c.parts, template_versions.c.created_at).where(
                    template_versions.c.tenant_id == tenant_id,
                    template_versions.c.name == name,
                    template_versions.c.locale == locale,
                    template_versions.c.version == version,
                )
            )
        ).one_or_none()
        return None if row is None else (row.parts, row.created_at)

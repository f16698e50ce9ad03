"""Wires the portal-api service: one place builds everything, from settings made at start-up."""

from pathlib import Path

from fastapi import FastAPI

from recupero_portal_api.adapters.repository import PortalRepository
from recupero_portal_api.adapters.tables import schema
from recupero_portal_api.entrypoints.api import router
from recupero_portal_api.entrypoints.events import EVENT_HANDLERS
from recupero_portal_api.settings import PortalSettings
from recupero_runtime.service import Service


def bootstrap(settings: PortalSettings) -> tuple[Service[PortalRepository], FastAPI]:
    service = Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=PortalRepository,
    )
    service.consume(EVENT_HANDLERS)
    app = service.create_app(
        router,
        title="Recupero portal API",
        description="Read models for the frontends: each debtor's account, balance and timeline, "
        "debtor lists by segment and the tenant's activity summary, built from all six topics.",
    )
    app.state.settings = settings
    return service, app

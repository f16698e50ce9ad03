"""Wires the ingest service: one place builds everything, from settings made at start-up."""

from pathlib import Path

from fastapi import FastAPI

from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.adapters.tables import schema
from recupero_ingest.entrypoints.api import router
from recupero_ingest.settings import IngestSettings
from recupero_runtime.service import Service


def bootstrap(settings: IngestSettings) -> tuple[Service[IngestRepository], FastAPI]:
    service = Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=IngestRepository,
    )
    app = service.create_app(
        router,
        title="Recupero ingest",
        description="Loads creditors' portfolios: validates rows, groups documents by debtor and "
        "emits `debt-imported`.",
    )
    app.state.settings = settings
    return service, app

"""Wires the ingest service: one place builds everything, from settings made at start-up."""

from pathlib import Path

from fastapi import FastAPI

from recupero_events import Topic
from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.adapters.tables import schema
from recupero_ingest.domain.profiles import shipped_profiles
from recupero_ingest.entrypoints.api import router
from recupero_ingest.entrypoints.events import debt_records_handler
from recupero_ingest.entrypoints.worker import ImportWorker
from recupero_ingest.settings import IngestSettings
from recupero_runtime.service import Service


def bootstrap(settings: IngestSettings) -> tuple[Service[IngestRepository], FastAPI]:
    service = Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=IngestRepository,
    )
    shipped = shipped_profiles()
    worker = ImportWorker(service, settings, shipped)
    service.add_worker("import-worker", worker.run)
    service.consume({Topic.DEBT_RECORDS.value: debt_records_handler()})
    app = service.create_app(
        router,
        title="Recupero ingest",
        description="Loads creditors' portfolios from files, API batches and the `debt-records` "
        "topic: validates every row, groups documents by debtor, and emits `debt-imported` for "
        "each debtor whose debt changed.",
    )
    app.state.settings = settings
    app.state.shipped_profiles = shipped
    app.state.worker = worker
    return service, app

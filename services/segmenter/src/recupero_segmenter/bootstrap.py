"""Wires the segmenter: consumes debts and payments, publishes placements."""

from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from recupero_events import Topic
from recupero_runtime.service import Service
from recupero_segmenter import handlers
from recupero_segmenter.adapters.repository import SegmenterRepository
from recupero_segmenter.adapters.tables import schema
from recupero_segmenter.entrypoints.api import router
from recupero_segmenter.settings import SegmenterSettings


def bootstrap(
    settings: SegmenterSettings, clock: handlers.Clock = lambda: datetime.now(UTC)
) -> tuple[Service[SegmenterRepository], FastAPI]:
    service = Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=SegmenterRepository,
    )
    service.consume(
        {
            Topic.DEBT_IMPORTED.value: handlers.debt_imported_handler(clock),
            Topic.PAYMENT_RECEIVED.value: handlers.payment_received_handler(clock),
        }
    )
    app = service.create_app(
        router,
        title="Recupero segmenter",
        description="Places every debtor in an aging segment and collection stage.",
    )
    return service, app

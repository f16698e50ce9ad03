"""Wires the segmenter: consumes debts, payments, promises and messages; publishes placements;
ages the portfolio every local midnight; serves the rule set API."""

import asyncio
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
    rules = handlers.RuleBook()
    service.consume(
        {
            Topic.DEBT_IMPORTED.value: handlers.debt_imported_handler(clock, rules),
            Topic.PAYMENT_RECEIVED.value: handlers.payment_received_handler(clock, rules),
            Topic.PROMISE_REGISTERED.value: handlers.promise_registered_handler(clock, rules),
            Topic.MESSAGE_SENT.value: handlers.message_sent_handler(clock, rules),
        }
    )
    service.add_worker(
        "aging",
        handlers.aging_worker(
            service.unit_of_work,
            rules,
            clock,
            settings.aging_interval_seconds,
            settings.activation_chunk_size,
            asyncio.sleep,
            settings.activation_connections,
        ),
    )
    app = service.create_app(
        router,
        title="Recupero segmenter",
        description="Places every debtor in a segment, collection stage and strategy by the "
        "tenant's versioned rule set; ages the portfolio every local midnight.",
    )
    app.state.clock = clock
    app.state.rules = rules
    return service, app

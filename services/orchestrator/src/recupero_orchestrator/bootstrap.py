"""Wires the orchestrator: case handlers on segment and payment events, plus the scheduler."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from recupero_events import Topic
from recupero_orchestrator import handlers
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.adapters.tables import schema
from recupero_orchestrator.entrypoints.api import router
from recupero_orchestrator.entrypoints.scheduler import scheduler_loop
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.service import Service


def bootstrap(
    settings: OrchestratorSettings, clock: handlers.Clock = lambda: datetime.now(UTC)
) -> tuple[Service[OrchestratorRepository], FastAPI]:
    service = Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=OrchestratorRepository,
    )
    timing = handlers.StrategyTiming(
        first_delay=timedelta(seconds=settings.first_reminder_delay_seconds),
        reminder_interval=timedelta(seconds=settings.reminder_interval_seconds),
    )
    service.consume(
        {
            Topic.DEBTOR_SEGMENTED.value: handlers.debtor_segmented_handler(clock, timing),
            Topic.PAYMENT_RECEIVED.value: handlers.payment_received_handler(),
        }
    )
    service.add_worker(
        "scheduler",
        scheduler_loop(
            service,
            clock,
            settings.scheduler_poll_interval_seconds,
            settings.scheduler_batch_size,
        ),
    )
    app = service.create_app(
        router,
        title="Recupero orchestrator",
        description="Walks debtors through collection strategies; fires `action-due` on time.",
    )
    return service, app

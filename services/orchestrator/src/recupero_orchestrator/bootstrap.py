"""Wires the orchestrator: handlers on import (authorised channels), segment, message, promise and
payment events, the scheduler and the API."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from recupero_events import Topic
from recupero_orchestrator import handlers
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.adapters.tables import schema
from recupero_orchestrator.entrypoints.agents import router as agents_router
from recupero_orchestrator.entrypoints.api import router
from recupero_orchestrator.entrypoints.authorisations import router as authorisations_router
from recupero_orchestrator.entrypoints.figures import router as figures_router
from recupero_orchestrator.entrypoints.plans import router as plans_router
from recupero_orchestrator.entrypoints.scheduler import day_plan_loop, scheduler_loop
from recupero_orchestrator.entrypoints.strategies import router as strategies_router
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.service import Service


def orchestrator_service(settings: OrchestratorSettings) -> Service[OrchestratorRepository]:
    """The service's database, outbox and workers, nothing registered yet (a process planning
    part of the day uses it as is)."""
    return Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=OrchestratorRepository,
    )


def bootstrap(
    settings: OrchestratorSettings, clock: handlers.Clock = lambda: datetime.now(UTC)
) -> tuple[Service[OrchestratorRepository], FastAPI]:
    service = orchestrator_service(settings)
    timing = handlers.StrategyTiming(
        first_delay=timedelta(seconds=settings.first_reminder_delay_seconds),
        reminder_interval=timedelta(seconds=settings.reminder_interval_seconds),
    )
    if settings.consumers_enabled:
        service.consume(
            {
                Topic.DEBT_IMPORTED.value: handlers.debt_imported_handler(clock),
                Topic.DEBTOR_SEGMENTED.value: handlers.debtor_segmented_handler(clock, timing),
                Topic.PAYMENT_RECEIVED.value: handlers.payment_received_handler(clock),
                Topic.PROMISE_REGISTERED.value: handlers.promise_registered_handler(clock),
                Topic.MESSAGE_SENT.value: handlers.message_sent_handler(clock),
                Topic.MESSAGE_STATUS_CHANGED.value: handlers.message_status_changed_handler(clock),
            }
        )
    if settings.scheduler_enabled:
        service.add_worker(
            "scheduler",
            scheduler_loop(
                service,
                clock,
                settings.scheduler_poll_interval_seconds,
                settings.scheduler_batch_size,
            ),
        )
    if settings.day_plan_enabled:
        service.add_worker(
            "day-plan",
            day_plan_loop(service, clock, settings),
        )
    app = service.create_app(
        router,
        strategies_router,
        agents_router,
        authorisations_router,
        figures_router,
        plans_router,
        title="Recupero orchestrator",
        description="Walks debtors through collection strategies; fires `action-due` on time.",
    )
    # Requests judge time by the same clock as the consumers and the scheduler.
    app.state.clock = clock
    app.state.settings = settings
    return service, app

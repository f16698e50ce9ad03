"""The durable schedule's clock: claims due actions and promises past their deadline (SKIP LOCKED,
so replicas share the work), and plans the day once a day."""

import asyncio
from datetime import date, datetime

import structlog

from recupero_orchestrator import handlers, planning
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.day_plan import plan_day
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.service import Service

log = structlog.get_logger()


def scheduler_loop(
    service: Service[OrchestratorRepository],
    clock: handlers.Clock,
    poll_interval: float,
    batch_size: int,
) -> handlers.Worker:
    async def run() -> None:
        while True:
            claimed = await run_once(service, clock(), batch_size)
            if claimed < batch_size:
                await asyncio.sleep(poll_interval)

    return run


async def run_once(service: Service[OrchestratorRepository], now: datetime, batch_size: int) -> int:
    """One pass: due actions, then promises past their deadline; returns how many were claimed."""
    async with service.unit_of_work() as uow:
        claimed = await handlers.fire_due_actions(uow, now, batch_size)
        await uow.commit()
    if claimed:
        # The batch's `action-due` went to the outbox in batch rows, not through `publish`.
        service.relay.notify()
    async with service.unit_of_work() as uow:
        claimed += await planning.resolve_due_promises(uow, now, batch_size)
        await uow.commit()
    return claimed


def day_plan_loop(
    service: Service[OrchestratorRepository],
    clock: handlers.Clock,
    settings: OrchestratorSettings,
    poll_interval: float = 60.0,
) -> handlers.Worker:
    """Plans the day for every tenant once a UTC day, from `day_plan_hour_utc`. The runs are
    recorded: after a restart the day's finished runs are not planned again, and an interrupted
    one resumes where it stopped."""

    async def run() -> None:
        planned_on: date | None = None
        while True:
            now = clock()
            if day_plan_due(now, planned_on, settings.day_plan_hour_utc):
                report = await plan_day(
                    service,
                    now,
                    chunk_size=settings.day_plan_chunk_size,
                    parts=settings.day_plan_parts,
                    processes=settings.day_plan_processes,
                )
                log.info(
                    "day_planned",
                    runs=[str(run) for run in report.runs],
                    debtors=report.debtors,
                    actions=report.actions,
                    skipped=report.skipped,
                    moved=report.moved,
                    replanned=report.replanned,
                )
                planned_on = now.date()
            await asyncio.sleep(poll_interval)

    return run


def day_plan_due(now: datetime, planned_on: date | None, hour_utc: int) -> bool:
    """Whether the day is still to plan: the hour has come and today's plan was not made."""
    return now.hour >= hour_utc and planned_on != now.date()

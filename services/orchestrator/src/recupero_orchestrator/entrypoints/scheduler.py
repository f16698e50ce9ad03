"""The durable schedule's clock: claims due actions and promises past their deadline (SKIP LOCKED,
so replicas share the work)."""

import asyncio
from datetime import datetime

from recupero_orchestrator import handlers, planning
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_runtime.service import Service


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
    async with service.unit_of_work() as uow:
        claimed += await planning.resolve_due_promises(uow, now, batch_size)
        await uow.commit()
    return claimed

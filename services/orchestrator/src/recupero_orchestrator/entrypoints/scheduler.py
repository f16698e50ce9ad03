"""The durable schedule's clock: claims due actions (SKIP LOCKED, so replicas share the work)."""

import asyncio

from recupero_orchestrator import handlers
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
            async with service.unit_of_work() as uow:
                fired = await handlers.fire_due_actions(uow, clock(), batch_size)
                await uow.commit()
            if fired < batch_size:
                await asyncio.sleep(poll_interval)

    return run

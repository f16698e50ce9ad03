"""The retry worker: sends parked deliveries again from PostgreSQL until their provider takes them.

Any replica may run it: claims are leased with `FOR UPDATE SKIP LOCKED`, so two never send the
same delivery, and one that dies gives its claims back when the lease ends.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from recupero_events import ActionDue
from recupero_notifier import handlers

log = structlog.get_logger()


def parked_deliveries_worker(
    units: handlers.AttemptUnits,
    *,
    carry: Callable[[ActionDue, handlers.AttemptUnit], Awaitable[None]],
    poll_seconds: float,
    batch_size: int,
    lease: timedelta,
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        while True:
            try:
                resumed = await handlers.resume_parked(
                    units, batch_size=batch_size, lease=lease, carry=carry
                )
            except Exception:
                # The database may be down too: the parked rows wait for it.
                log.exception("parked_deliveries_sweep_failed")
                resumed = 0
            if resumed < batch_size:
                await asyncio.sleep(poll_seconds)

    return run

from pydantic import Field

from recupero_runtime.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    service_name: str = "orchestrator"
    http_port: int = 8003
    # Events of different debtors are handled side by side (one debtor's stay in order; each
    # handler locks only that debtor's case): one at a time, a burst of payments queued behind
    # each other for a second under load.
    consumer_concurrency: int = Field(default=8, ge=1)
    # Default strategy timing: the first reminder goes out this long after a case opens, the
    # second one this long after the first.
    first_reminder_delay_seconds: float = 0.0
    reminder_interval_seconds: float = 3 * 24 * 3600
    # What this process runs: the event consumers, the scheduler, or both (the default). Apart,
    # a burst of due actions never shares an event loop with a payment that must cancel them.
    consumers_enabled: bool = True
    scheduler_enabled: bool = True
    scheduler_poll_interval_seconds: float = 0.5
    scheduler_batch_size: int = 500
    # Planning the day for every tenant (`day_plan.plan_day`): once a UTC day from this hour
    # (05:00 UTC is late evening in the Americas). A chunk's cases stay locked while it is
    # planned, so a smaller chunk keeps payments waiting less.
    day_plan_enabled: bool = True
    day_plan_hour_utc: int = Field(default=5, ge=0, le=23)
    day_plan_chunk_size: int = 1_000
    # A run's debtors are split into this many key ranges, planned by this many processes at
    # once (this one and more it starts, one core each; replicas planning the same day share
    # the ranges). A process costs its start-up (about 2 s of CPU) and a few connections.
    day_plan_parts: int = Field(default=8, ge=1)
    day_plan_processes: int = Field(default=1, ge=1)

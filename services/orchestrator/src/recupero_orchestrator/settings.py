from recupero_runtime.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    service_name: str = "orchestrator"
    http_port: int = 8003
    # Default strategy timing: the first reminder goes out this long after a case opens, the
    # second one this long after the first.
    first_reminder_delay_seconds: float = 0.0
    reminder_interval_seconds: float = 3 * 24 * 3600
    scheduler_poll_interval_seconds: float = 0.5
    scheduler_batch_size: int = 500

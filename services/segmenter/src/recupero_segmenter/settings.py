from pydantic import Field

from recupero_runtime.settings import ServiceSettings


class SegmenterSettings(ServiceSettings):
    service_name: str = "segmenter"
    http_port: int = 8002
    aging_interval_seconds: float = Field(
        30.0,
        description="How often the aging worker looks for time zones whose local date turned "
        "(and for activations a crash interrupted).",
    )
    activation_chunk_size: int = Field(
        50_000, description="Debtors re-segmented per transaction when a rule set is activated."
    )
    activation_connections: int = Field(
        2,
        ge=1,
        description="Chunks of an activation re-segmented at once, each on its own database "
        "connection (each statement runs on one core).",
    )

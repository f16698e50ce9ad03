"""Settings every service shares; each service subclasses them with its own defaults.

Built once at start-up (never at import) from `RECUPERO_*` environment variables and passed down.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECUPERO_", extra="ignore")

    service_name: str = Field(
        description="Name used as CloudEvents source, consumer group, schema."
    )
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/recupero"
    # Connections kept open (10 more may be opened in bursts).
    database_pool_size: int = Field(default=10, ge=1)
    # Test each pooled connection before use (BEGIN, a query, ROLLBACK: three round trips a
    # checkout). Off: a connection dead since a PostgreSQL restart fails its first statement
    # once instead (consumers retry it; an HTTP caller gets a 500 and retries).
    database_pre_ping: bool = True
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # sha256 hex digest of an API key -> tenant id. Keys themselves are never stored.
    api_keys: dict[str, str] = Field(default_factory=dict)
    log_level: str = "INFO"
    outbox_poll_interval_seconds: float = 0.2
    consumer_max_attempts: int = 3
    # Records per poll; keep batch x slowest handler well under Kafka's max.poll.interval (300 s).
    consumer_batch_size: int = 100
    # Records of different keys (debtors) handled at once; 1: one after the other.
    consumer_concurrency: int = Field(default=1, ge=1)
    startup_timeout_seconds: float = 120.0

    @property
    def schema_name(self) -> str:
        return self.service_name.replace("-", "_")

from pydantic import Field

from recupero_runtime.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    service_name: str = "ingest"
    http_port: int = 8001
    max_upload_bytes: int = 2 * 1024 * 1024 * 1024
    # Uploads are kept in the database in chunks of this size, so any replica can process them.
    upload_chunk_bytes: int = 8 * 1024 * 1024
    max_batch_records: int = 10_000
    import_poll_seconds: float = 1.0
    # A job whose worker sent no heartbeat for this long is taken over by another worker.
    import_stale_after_seconds: float = 60.0
    import_max_attempts: int = 3
    # Processes that parse and validate a CSV upload's slices at once (one core each); 0: the
    # import worker's own thread parses.
    parse_processes: int = Field(default=2, ge=0)
    # An import's debtors are split into this many partitions, staged and consolidated at once
    # on as many PostgreSQL connections (one backend, so one core, each), each committing its
    # debtors and events on its own. A job keeps the split it started with.
    consolidation_partitions: int = Field(default=2, ge=1)

from recupero_runtime.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    service_name: str = "ingest"
    http_port: int = 8001
    max_upload_bytes: int = 50 * 1024 * 1024

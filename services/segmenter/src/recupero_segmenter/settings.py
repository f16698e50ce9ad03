from recupero_runtime.settings import ServiceSettings


class SegmenterSettings(ServiceSettings):
    service_name: str = "segmenter"
    http_port: int = 8002

from recupero_runtime.settings import ServiceSettings


class PortalSettings(ServiceSettings):
    service_name: str = "portal-api"
    http_port: int = 8000

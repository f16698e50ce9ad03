from recupero_runtime.settings import ServiceSettings


class PortalSettings(ServiceSettings):
    service_name: str = "portal-api"
    http_port: int = 8000
    # How far ahead a debtor may promise to pay; a tenant policy in a later issue.
    max_promise_days_ahead: int = 30

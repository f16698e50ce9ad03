from recupero_runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    service_name: str = "notifier"
    http_port: int = 8004
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # A hung SMTP server must not hold a partition forever: the attempt fails and is retried.
    smtp_timeout_seconds: float = 30.0
    mail_from: str = "Recupero Cobranza <cobranza@recupero.local>"

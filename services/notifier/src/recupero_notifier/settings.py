from pathlib import Path

from pydantic import Field, SecretStr

from recupero_runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    service_name: str = "notifier"
    http_port: int = 8004
    # How providers reach our webhooks; Twilio signs this exact URL.
    public_url: str = "http://127.0.0.1:8004"
    # Actions of different debtors carried out at once: each mostly waits on its provider.
    # Each holds two connections (the delivery's own transaction and the consumer's), so the
    # pool keeps more than twice as many, and webhooks still find one.
    consumer_concurrency: int = Field(default=16, ge=1)
    database_pool_size: int = Field(default=40, ge=1)
    # Four checkouts a message (the consumer's, the attempt's, two webhooks'): pinging each was
    # a third of the round trips to PostgreSQL. The consumer retries a statement on a connection
    # lost since a restart; providers retry a webhook that got a 500.
    database_pre_ping: bool = False

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # A hung SMTP server must not hold a partition forever: the attempt fails and is retried.
    smtp_timeout_seconds: float = 30.0
    mail_from: str = "Recupero Cobranza <cobranza@recupero.local>"

    # WhatsApp Business Cloud API; the channel is off until token, app secret and number are set.
    whatsapp_api_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = "v21.0"
    whatsapp_phone_number_id: str | None = None
    whatsapp_access_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    # Cloud API's default throughput per business number.
    whatsapp_messages_per_second: float = Field(default=80.0, ge=0)

    # Twilio (SMS and IVR); off until account, token and sender number are set.
    twilio_api_url: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messages_per_second: float = Field(default=100.0, ge=0)
    # Tenants' own WhatsApp and Twilio accounts (`adapters.accounts`), a JSON file mounted from
    # the secret store; tenants not in it use the accounts above.
    provider_accounts_file: Path | None = None

    provider_timeout_seconds: float = 10.0
    # Provider requests in flight at once, each on a kept-alive connection of its own
    # (`adapters.http`). 16 carry WhatsApp's default 80 messages a second at 200 ms a request.
    provider_max_connections: int = Field(default=16, ge=1)
    # How long one attempt retries 429/5xx with backoff before the consumer takes over.
    provider_retry_seconds: float = 30.0
    # An attempt whose outcome is unknown waits this long for the provider's callback before
    # the action is sent again.
    unconfirmed_attempt_wait_seconds: float = 60.0
    # A delivery still unavailable after those retries is parked in PostgreSQL and tried again
    # after this delay, doubling per attempt up to the maximum (never before Retry-After).
    parked_retry_initial_seconds: float = Field(default=5.0, gt=0)
    parked_retry_max_seconds: float = Field(default=300.0, gt=0)
    # How often the retry worker looks for parked deliveries that are due, and how many at once.
    parked_retry_poll_seconds: float = Field(default=1.0, gt=0)
    parked_retry_batch_size: int = Field(default=100, ge=1)
    # Signed WhatsApp notifications older than this are refused as replays.
    webhook_max_age_seconds: float = 300.0

    # The `payment_link` of every template: `{tenant_id}` and `{debtor_id}` are filled in.
    payment_link_url: str = "https://pagos.recupero.local/{tenant_id}/{debtor_id}"

    # The WhatsApp self-service bot answers debtors whose debt the notifier knows.
    chatbot_enabled: bool = True
    # The furthest a promise made to the bot may be, in days from the debtor's today.
    chatbot_max_promise_days: int = Field(default=30, ge=0)
    # Sent when a debtor asks the bot for a payment link; `{tenant_id}` and `{debtor_id}` are
    # filled in. Unset: the request goes to an agent.
    chatbot_payment_link_url: str | None = None

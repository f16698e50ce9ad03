from pydantic import Field, SecretStr

from recupero_runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    service_name: str = "notifier"
    http_port: int = 8004
    # How providers reach our webhooks; Twilio signs this exact URL.
    public_url: str = "http://127.0.0.1:8004"

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

    provider_timeout_seconds: float = 10.0
    # How long one attempt retries 429/5xx with backoff before the consumer takes over.
    provider_retry_seconds: float = 30.0
    # An attempt whose outcome is unknown waits this long for the provider's callback before
    # the action is sent again.
    unconfirmed_attempt_wait_seconds: float = 60.0
    # Signed WhatsApp notifications older than this are refused as replays.
    webhook_max_age_seconds: float = 300.0

    # The WhatsApp self-service bot answers debtors whose debt the notifier knows.
    chatbot_enabled: bool = True
    # The furthest a promise made to the bot may be, in days from the debtor's today.
    chatbot_max_promise_days: int = Field(default=30, ge=0)
    # Sent when a debtor asks the bot for a payment link; `{tenant_id}` and `{debtor_id}` are
    # filled in. Unset: the request goes to an agent.
    chatbot_payment_link_url: str | None = None

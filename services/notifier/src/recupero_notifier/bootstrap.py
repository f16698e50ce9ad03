"""Wires the notifier service: one place builds everything, from settings made at start-up."""

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from recupero_events import Channel, Topic
from recupero_notifier.adapters.channels import ChannelAdapter
from recupero_notifier.adapters.email import EmailChannel, EmailSender, SmtpSender
from recupero_notifier.adapters.providers import TokenBucket
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_notifier.adapters.tables import schema
from recupero_notifier.adapters.templates import JinjaTemplates
from recupero_notifier.adapters.twilio import TwilioAccount, TwilioSms, TwilioVoice
from recupero_notifier.adapters.whatsapp import WhatsAppCloud
from recupero_notifier.entrypoints.events import (
    action_due_handler,
    on_debt_imported,
    on_payment_received,
)
from recupero_notifier.entrypoints.webhooks import Chatbot, WebhookSecrets, webhook_router
from recupero_notifier.handlers import ChatbotPolicy
from recupero_notifier.settings import NotifierSettings
from recupero_runtime.service import Service


def channel_adapters(
    settings: NotifierSettings, client: httpx.AsyncClient, sender: EmailSender
) -> dict[Channel, ChannelAdapter]:
    """Email always; WhatsApp, SMS and IVR when their provider credentials are configured."""
    channels: dict[Channel, ChannelAdapter] = {Channel.EMAIL: EmailChannel(sender)}
    if (
        settings.whatsapp_access_token is not None
        and settings.whatsapp_app_secret is not None
        and settings.whatsapp_phone_number_id is not None
    ):
        channels[Channel.WHATSAPP] = WhatsAppCloud(
            client,
            api_url=settings.whatsapp_api_url,
            api_version=settings.whatsapp_api_version,
            phone_number_id=settings.whatsapp_phone_number_id,
            access_token=settings.whatsapp_access_token.get_secret_value(),
            limiter=TokenBucket(settings.whatsapp_messages_per_second),
            retry_budget_seconds=settings.provider_retry_seconds,
        )
    if (
        settings.twilio_account_sid is not None
        and settings.twilio_auth_token is not None
        and settings.twilio_from_number is not None
    ):
        account = TwilioAccount(
            client,
            api_url=settings.twilio_api_url,
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            public_url=settings.public_url,
            limiter=TokenBucket(settings.twilio_messages_per_second),
            retry_budget_seconds=settings.provider_retry_seconds,
        )
        channels[Channel.SMS] = TwilioSms(account)
        channels[Channel.IVR] = TwilioVoice(account)
    return channels


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def bootstrap(
    settings: NotifierSettings, sender: EmailSender | None = None
) -> tuple[Service[NotifierRepository], FastAPI]:
    service = Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=NotifierRepository,
    )
    if sender is None:
        sender = SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.mail_from,
            settings.smtp_timeout_seconds,
        )
    client = httpx.AsyncClient(
        timeout=settings.provider_timeout_seconds,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
    )

    async def close_client_on_shutdown() -> None:
        # A worker that only waits: the service cancels it at shutdown, which closes the pool.
        try:
            await asyncio.Event().wait()
        finally:
            await client.aclose()

    service.add_worker("provider-http-client", close_client_on_shutdown)
    channels = channel_adapters(settings, client, sender)
    service.consume(
        {
            Topic.ACTION_DUE.value: action_due_handler(
                attempts=service.unit_of_work,
                channels=channels,
                templates=JinjaTemplates(),
                unconfirmed_wait=timedelta(seconds=settings.unconfirmed_attempt_wait_seconds),
            ),
            Topic.DEBT_IMPORTED.value: on_debt_imported,
            Topic.PAYMENT_RECEIVED.value: on_payment_received,
        }
    )
    whatsapp = channels.get(Channel.WHATSAPP)
    chatbot = None
    if settings.chatbot_enabled and isinstance(whatsapp, WhatsAppCloud):
        chatbot = Chatbot(
            policy=ChatbotPolicy(
                max_promise_days=settings.chatbot_max_promise_days,
                payment_link_url=settings.chatbot_payment_link_url,
            ),
            sender=whatsapp,
        )
    secrets = WebhookSecrets(
        public_url=settings.public_url,
        max_age=timedelta(seconds=settings.webhook_max_age_seconds),
        whatsapp_app_secret=_secret(settings.whatsapp_app_secret),
        whatsapp_verify_token=_secret(settings.whatsapp_verify_token),
        twilio_auth_token=_secret(settings.twilio_auth_token),
    )
    app = service.create_app(
        webhook_router(secrets, service.unit_of_work, chatbot),
        title="Recupero notifier",
        description="Carries out due collection actions on WhatsApp, SMS, email and IVR: renders "
        "the template, sends at most once per action, emits `message-sent`; verifies provider "
        "webhooks and emits `message-status-changed` (deliveries, failures, replies, opt-outs); "
        "answers debtors on WhatsApp with a self-service bot (`promise-registered`, hand-offs).",
    )
    return service, app

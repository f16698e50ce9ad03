"""Wires the notifier service: one place builds everything, from settings made at start-up."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker

from recupero_events import Channel, Topic
from recupero_notifier.adapters.accounts import (
    ByTenant,
    ProviderAccountsError,
    by_tenant,
    load_provider_accounts,
)
from recupero_notifier.adapters.channels import ChannelAdapter
from recupero_notifier.adapters.email import EmailChannel, EmailSender, SmtpSender
from recupero_notifier.adapters.http import ProviderClient
from recupero_notifier.adapters.letters import LetterChannel
from recupero_notifier.adapters.providers import TokenBucket
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_notifier.adapters.tables import schema
from recupero_notifier.adapters.templates import JinjaTemplates
from recupero_notifier.adapters.twilio import TwilioAccount, TwilioSms, TwilioVoice
from recupero_notifier.adapters.whatsapp import WhatsAppChannel, WhatsAppCloud
from recupero_notifier.domain.retries import ParkingBackoff
from recupero_notifier.entrypoints.api import templates_and_letters_router
from recupero_notifier.entrypoints.events import (
    action_due_handler,
    on_debt_imported,
    on_payment_received,
)
from recupero_notifier.entrypoints.parked import parked_deliveries_worker
from recupero_notifier.entrypoints.webhooks import (
    Chatbot,
    SigningAccount,
    WebhookSecrets,
    webhook_router,
)
from recupero_notifier.handlers import ActionDelivery, ChatbotPolicy
from recupero_notifier.settings import NotifierSettings
from recupero_runtime.db import UnitOfWork
from recupero_runtime.service import Service


@dataclass(frozen=True)
class ProviderAccounts:
    """Every provider account the notifier sends from, by tenant, and what verifies the webhooks
    addressed to each."""

    whatsapp: ByTenant[WhatsAppCloud]
    twilio: ByTenant[TwilioAccount]
    # Phone number id / Account SID -> the secret that signs its webhooks, and its tenants.
    whatsapp_signing: dict[str, SigningAccount]
    twilio_signing: dict[str, SigningAccount]
    # Meta's subscription handshake comes per app: the verify token of any configured number.
    whatsapp_verify_tokens: tuple[str, ...]


def provider_accounts(settings: NotifierSettings, client: ProviderClient) -> ProviderAccounts:
    """The default accounts from the settings, and the tenants' own from
    `RECUPERO_PROVIDER_ACCOUNTS_FILE` (validated here: a mistake stops the start-up)."""
    tenants = (
        {}
        if settings.provider_accounts_file is None
        else load_provider_accounts(settings.provider_accounts_file).tenants
    )
    app_secrets: dict[str, str] = {}
    auth_tokens: dict[str, str] = {}

    def keep(secrets: dict[str, str], key: str, secret: SecretStr, where: str) -> None:
        if secrets.setdefault(key, secret.get_secret_value()) != secret.get_secret_value():
            raise ProviderAccountsError(
                f"tenants.{where}: {key} is also the default account, with another secret"
            )

    def whatsapp_number(
        phone_number_id: str, access_token: str, rate: float | None
    ) -> WhatsAppCloud:
        return WhatsAppCloud(
            client,
            api_url=settings.whatsapp_api_url,
            api_version=settings.whatsapp_api_version,
            phone_number_id=phone_number_id,
            access_token=access_token,
            limiter=TokenBucket(settings.whatsapp_messages_per_second if rate is None else rate),
            retry_budget_seconds=settings.provider_retry_seconds,
        )

    def twilio_account(
        sid: str, auth_token: str, from_number: str, voice_from: str | None, rate: float | None
    ) -> TwilioAccount:
        return TwilioAccount(
            client,
            api_url=settings.twilio_api_url,
            account_sid=sid,
            auth_token=auth_token,
            from_number=from_number,
            voice_from_number=voice_from,
            public_url=settings.public_url,
            limiter=TokenBucket(settings.twilio_messages_per_second if rate is None else rate),
            retry_budget_seconds=settings.provider_retry_seconds,
        )

    default_number = None
    if (
        settings.whatsapp_access_token is not None
        and settings.whatsapp_app_secret is not None
        and settings.whatsapp_phone_number_id is not None
    ):
        default_number = whatsapp_number(
            settings.whatsapp_phone_number_id,
            settings.whatsapp_access_token.get_secret_value(),
            None,
        )
        app_secrets[settings.whatsapp_phone_number_id] = (
            settings.whatsapp_app_secret.get_secret_value()
        )
    default_twilio = None
    if (
        settings.twilio_account_sid is not None
        and settings.twilio_auth_token is not None
        and settings.twilio_from_number is not None
    ):
        default_twilio = twilio_account(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_from_number,
            None,
            None,
        )
        auth_tokens[settings.twilio_account_sid] = settings.twilio_auth_token.get_secret_value()

    verify_tokens: list[SecretStr] = []
    if settings.whatsapp_verify_token is not None:
        verify_tokens.append(settings.whatsapp_verify_token)
    numbers: list[tuple[str, str, Callable[[], WhatsAppCloud]]] = []
    twilios: list[tuple[str, str, Callable[[], TwilioAccount]]] = []
    for tenant_id, own in tenants.items():
        if (number := own.whatsapp) is not None:
            keep(app_secrets, number.phone_number_id, number.app_secret, f"{tenant_id}.whatsapp")
            if number.verify_token is not None:
                verify_tokens.append(number.verify_token)
            build_number = partial(
                whatsapp_number,
                number.phone_number_id,
                number.access_token.get_secret_value(),
                number.messages_per_second,
            )
            numbers.append((tenant_id, number.phone_number_id, build_number))
        if (account := own.twilio) is not None:
            keep(auth_tokens, account.account_sid, account.auth_token, f"{tenant_id}.twilio")
            build_account = partial(
                twilio_account,
                account.account_sid,
                account.auth_token.get_secret_value(),
                account.from_number,
                account.voice_from_number,
                account.messages_per_second,
            )
            twilios.append((tenant_id, account.account_sid, build_account))
    whatsapp = by_tenant(default_number, numbers)
    twilio = by_tenant(default_twilio, twilios)
    return ProviderAccounts(
        whatsapp=whatsapp,
        twilio=twilio,
        whatsapp_signing={
            number_id: SigningAccount(app_secrets[number_id], scope)
            for number_id, (_, scope) in whatsapp.scopes(lambda n: n.phone_number_id).items()
        },
        twilio_signing={
            sid: SigningAccount(auth_tokens[sid], scope)
            for sid, (_, scope) in twilio.scopes(lambda a: a.account_sid).items()
        },
        whatsapp_verify_tokens=tuple(
            dict.fromkeys(token.get_secret_value() for token in verify_tokens)
        ),
    )


def channel_adapters(
    accounts: ProviderAccounts, sender: EmailSender
) -> dict[Channel, ChannelAdapter]:
    """Email always; WhatsApp, SMS and IVR when a default or a tenant's account is configured."""
    channels: dict[Channel, ChannelAdapter] = {Channel.EMAIL: EmailChannel(sender)}
    if accounts.whatsapp:
        channels[Channel.WHATSAPP] = WhatsAppChannel(accounts.whatsapp)
    if accounts.twilio:
        channels[Channel.SMS] = TwilioSms(accounts.twilio)
        channels[Channel.IVR] = TwilioVoice(accounts.twilio)
    return channels


def attempt_units(
    service: Service[NotifierRepository],
) -> Callable[[], UnitOfWork[NotifierRepository]]:
    """Units of work for a delivery's attempt records, each one statement that commits on its
    own (autocommit: no BEGIN and COMMIT round trips), durable before the provider is called.
    They never publish: what is published commits with the consumer's unit of work."""
    sessions = async_sessionmaker(
        service.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )
    return partial(
        UnitOfWork, sessions, service.schema, NotifierRepository, service.settings.service_name
    )


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
    client = ProviderClient(settings.provider_max_connections, settings.provider_timeout_seconds)

    async def close_client_on_shutdown() -> None:
        # A worker that only waits: the service cancels it at shutdown, which closes the pool.
        try:
            await asyncio.Event().wait()
        finally:
            await client.aclose()

    service.add_worker("provider-http-client", close_client_on_shutdown)
    accounts = provider_accounts(settings, client)
    channels = channel_adapters(accounts, sender)
    # Letters need no provider account: the print queue is in our own database.
    channels[Channel.LETTER] = LetterChannel(service.unit_of_work, lambda: datetime.now(UTC))
    delivery = ActionDelivery(
        attempts=attempt_units(service),
        channels=channels,
        templates=JinjaTemplates(settings.payment_link_url),
        unconfirmed_wait=timedelta(seconds=settings.unconfirmed_attempt_wait_seconds),
        backoff=ParkingBackoff(
            initial=timedelta(seconds=settings.parked_retry_initial_seconds),
            maximum=timedelta(seconds=settings.parked_retry_max_seconds),
        ),
        max_in_flight=settings.provider_max_connections,
    )
    service.add_worker(
        "parked-deliveries",
        parked_deliveries_worker(
            service.unit_of_work,
            carry=delivery.resume_parked,
            poll_seconds=settings.parked_retry_poll_seconds,
            batch_size=settings.parked_retry_batch_size,
            # Longer than one send can take, so a lease never ends under a live attempt.
            lease=timedelta(
                seconds=settings.unconfirmed_attempt_wait_seconds
                + settings.provider_retry_seconds
                + settings.provider_timeout_seconds
            ),
        ),
    )
    service.consume(
        {
            Topic.ACTION_DUE.value: action_due_handler(delivery),
            Topic.DEBT_IMPORTED.value: on_debt_imported,
            Topic.PAYMENT_RECEIVED.value: on_payment_received,
        }
    )
    chatbot = None
    if settings.chatbot_enabled and accounts.whatsapp:
        chatbot = Chatbot(
            policy=ChatbotPolicy(
                max_promise_days=settings.chatbot_max_promise_days,
                payment_link_url=settings.chatbot_payment_link_url,
            ),
            # The bot answers from the number the debtor wrote to.
            senders={
                number_id: number
                for number_id, (number, _) in accounts.whatsapp.scopes(
                    lambda n: n.phone_number_id
                ).items()
            },
        )
    secrets = WebhookSecrets(
        public_url=settings.public_url,
        max_age=timedelta(seconds=settings.webhook_max_age_seconds),
        whatsapp_verify_tokens=accounts.whatsapp_verify_tokens,
        whatsapp=accounts.whatsapp_signing,
        twilio=accounts.twilio_signing,
    )
    app = service.create_app(
        templates_and_letters_router(delivery.templates, settings.chatbot_max_promise_days),
        webhook_router(
            secrets,
            service.unit_of_work,
            chatbot,
            max_promise_days=settings.chatbot_max_promise_days,
        ),
        title="Recupero notifier",
        description="Carries out due collection actions on WhatsApp, SMS, email, IVR and printed "
        "letters: renders the tenant's template for the debtor's locale (uploaded, validated and "
        "previewed under `/v1/templates`), sends at most once per action, emits `message-sent`; "
        "queues letters for print with their tracking (`/v1/letters`); verifies provider "
        "webhooks and emits `message-status-changed` (deliveries, failures, replies, opt-outs); "
        "answers debtors on WhatsApp with a self-service bot (`promise-registered`, hand-offs).",
    )
    return service, app

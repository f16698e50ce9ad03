"""The notifier on a real PostgreSQL, a real Kafka broker and a real SMTP server.

A due email action reaches the debtor's mailbox once, in Spanish, with the Message-ID derived from
the action, and `message-sent` follows on Kafka; a redelivered or re-emitted action sends nothing.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from recupero_devstack._util import free_port
from recupero_devstack.smtp import MessageInfo, SmtpSink
from recupero_events import (
    ActionDue,
    Channel,
    ContactDetails,
    EncodedEvent,
    MessageSent,
    Money,
    Topic,
    dead_letter_topic,
    decode,
    encode,
)
from recupero_notifier.adapters.email import EmailSender, SmtpSender
from recupero_notifier.adapters.tables import deliveries
from recupero_notifier.bootstrap import bootstrap
from recupero_notifier.domain.messages import OutgoingEmail
from recupero_notifier.settings import NotifierSettings

pytestmark = pytest.mark.integration

TENANT = "demo-bank"
TIMEOUT_S = 60


@pytest.fixture
def settings(database_url: str, kafka_bootstrap: str, smtp_sink: SmtpSink) -> NotifierSettings:
    return NotifierSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        http_port=free_port(),
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.smtp_port,
    )


@asynccontextmanager
async def running(
    settings: NotifierSettings, sender: EmailSender | None = None
) -> AsyncIterator[FastAPI]:
    service, app = bootstrap(settings, sender)
    await service.start()
    try:
        yield app
    finally:
        await service.stop()


class TopicReader:
    """Every record of a topic from the beginning, read without a consumer group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[ConsumerRecord] = []
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )

    async def __aenter__(self) -> "TopicReader":
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait_for(self, found: Callable[[ConsumerRecord], bool]) -> ConsumerRecord:
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                for record in self.records:
                    if found(record):
                        return record
                batches = await self._consumer.getmany(timeout_ms=200)
                for batch in batches.values():
                    self.records.extend(batch)


def header(record: ConsumerRecord, name: str) -> str:
    value: bytes = dict(record.headers)[name]
    return value.decode()


def message_sent_for(action_id: UUID) -> Callable[[ConsumerRecord], bool]:
    def found(record: ConsumerRecord) -> bool:
        event = decode(record.topic, record.value, list(record.headers))
        return isinstance(event.payload, MessageSent) and event.payload.action_id == action_id

    return found


def action_due(
    debtor_id: str,
    email: str,
    *,
    action_id: UUID | None = None,
    channel: Channel = Channel.EMAIL,
    template: str = "first-reminder",
) -> ActionDue:
    return ActionDue(
        tenant_id=TENANT,
        debtor_id=debtor_id,
        action_id=action_id or uuid4(),
        channel=channel,
        template=template,
        strategy="default/1",
        scheduled_for=datetime.now(UTC),
        contact=ContactDetails(
            name="Ana Pérez",
            email=email,
            phone="+5215512345678",
            country="MX",
            time_zone="America/Mexico_City",
        ),
        balance=Money(amount_minor=1_234_567, currency="MXN"),
        days_past_due=15,
        oldest_due_on=date(2025, 3, 5),
    )


async def produce(producer: AIOKafkaProducer, event: EncodedEvent) -> None:
    await producer.send_and_wait(event.topic, event.value, key=event.key, headers=event.headers)


def as_orchestrator(payload: ActionDue) -> EncodedEvent:
    return encode(payload, source="recupero/orchestrator")


async def wait_for_mail(sink: SmtpSink, message_id: str) -> MessageInfo:
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            for info in sink.messages():
                if info["message_id"] == message_id:
                    return info
            await asyncio.sleep(0.1)


def mails_with(sink: SmtpSink, message_id: str) -> list[MessageInfo]:
    return [info for info in sink.messages() if info["message_id"] == message_id]


async def delivery_row(database_url: str, action_id: UUID) -> dict[str, Any] | None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    select(deliveries).where(deliveries.c.action_id == action_id)
                )
            ).one_or_none()
    finally:
        await engine.dispose()
    return None if row is None else dict(row._mapping)


async def test_due_email_action_reaches_the_debtor_once(
    settings: NotifierSettings,
    smtp_sink: SmtpSink,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    database_url: str,
) -> None:
    debtor_id = f"C-{uuid4().hex[:8]}"
    address = f"ana.{debtor_id.lower()}@example.com"
    action = action_due(debtor_id, address)
    message_id = f"<{action.action_id}@recupero.local>"
    event = as_orchestrator(action)

    async with (
        running(settings) as app,
        TopicReader(kafka_bootstrap, Topic.MESSAGE_SENT.value) as sent,
    ):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://notifier"
        ) as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text

        await produce(producer, event)

        mail = await wait_for_mail(smtp_sink, message_id)
        assert mail["rcpt_tos"] == [address]
        assert mail["mail_from"] == "cobranza@recupero.local"
        assert mail["subject"] == "Recordatorio de pago: saldo pendiente de $12,345.67 MXN"
        raw = smtp_sink.raw_message(mail["id"])
        assert raw is not None
        email = message_from_bytes(raw, policy=default_policy)
        assert isinstance(email, EmailMessage)
        assert email["List-Unsubscribe"] == "<mailto:baja@recupero.local?subject=BAJA>"
        body = email.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "Estimado(a) Ana Pérez:" in text
        assert "$12,345.67 MXN" in text
        assert "05/03/2025" in text
        assert "15 días de atraso" in text
        assert email.get_body(("html",)) is not None

        record = await sent.wait_for(message_sent_for(action.action_id))
        published = decode(record.topic, record.value, list(record.headers))
        assert isinstance(published.payload, MessageSent)
        assert published.payload.provider == "smtp"
        assert published.payload.provider_message_id == message_id
        assert published.payload.channel is Channel.EMAIL
        assert published.payload.template == "first-reminder"
        assert published.source == "recupero/notifier"
        assert published.correlation_id == event.event_id
        assert record.key == f"{TENANT}:{debtor_id}".encode()

        # The same event redelivered, then the same action re-emitted under a new event id.
        await produce(producer, event)
        await produce(producer, as_orchestrator(action))
        # Same debtor, so same partition: once this one is through, the two above were handled.
        sentinel = action_due(debtor_id, address, template="second-reminder")
        await produce(producer, as_orchestrator(sentinel))
        sentinel_mail = await wait_for_mail(smtp_sink, f"<{sentinel.action_id}@recupero.local>")
        assert (
            sentinel_mail["subject"] == "Segundo aviso: su saldo de $12,345.67 MXN sigue pendiente"
        )
        await sent.wait_for(message_sent_for(sentinel.action_id))

        assert len(mails_with(smtp_sink, message_id)) == 1
        assert sum(message_sent_for(action.action_id)(r) for r in sent.records) == 1

    row = await delivery_row(settings.database_url, action.action_id)
    assert row is not None
    assert row["tenant_id"] == TENANT
    assert row["debtor_id"] == debtor_id
    assert row["status"] == "sent"
    assert row["attempts"] == 1
    assert row["message_id"] == message_id
    assert row["sent_at"] == published.payload.sent_at


async def test_connections_cut_by_postgresql_are_replaced_without_a_second_send(
    settings: NotifierSettings,
    smtp_sink: SmtpSink,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    database_url: str,
) -> None:
    """The notifier does not test pooled connections before each use (`database_pre_ping`):
    after PostgreSQL dropped every one of them (a restart, a failover), the next action still
    reaches the debtor, once."""
    debtor_id = f"C-{uuid4().hex[:8]}"
    address = f"{debtor_id.lower()}@example.com"
    first, second = action_due(debtor_id, address), action_due(debtor_id, address)
    second_id = f"<{second.action_id}@recupero.local>"

    async with (
        running(settings),
        TopicReader(kafka_bootstrap, Topic.MESSAGE_SENT.value) as sent,
    ):
        await produce(producer, as_orchestrator(first))
        await sent.wait_for(message_sent_for(first.action_id))
        # This test's database is the notifier's alone: every other backend in it is its pool.
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                cut = (
                    await connection.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                ).scalar_one()
        finally:
            await engine.dispose()
        assert cut > 0

        await produce(producer, as_orchestrator(second))
        await wait_for_mail(smtp_sink, second_id)
        await sent.wait_for(message_sent_for(second.action_id))

    assert len(mails_with(smtp_sink, second_id)) == 1
    row = await delivery_row(settings.database_url, second.action_id)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("sent", 1)


class FailsOnce:
    """Our SMTP adapter, preceded by one failure the consumer will retry."""

    def __init__(self, sender: SmtpSender) -> None:
        self._sender = sender
        self.calls = 0

    async def send(self, email: OutgoingEmail) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("provider hiccup")
        await self._sender.send(email)


async def test_failed_attempt_is_recorded_and_the_retry_sends_once(
    settings: NotifierSettings,
    smtp_sink: SmtpSink,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    sender = FailsOnce(
        SmtpSender(settings.smtp_host, settings.smtp_port, settings.mail_from, timeout_seconds=10)
    )
    debtor_id = f"C-{uuid4().hex[:8]}"
    action = action_due(debtor_id, f"{debtor_id.lower()}@example.com")
    message_id = f"<{action.action_id}@recupero.local>"

    async with (
        running(settings, sender),
        TopicReader(kafka_bootstrap, Topic.MESSAGE_SENT.value) as sent,
    ):
        await produce(producer, as_orchestrator(action))
        await wait_for_mail(smtp_sink, message_id)
        await sent.wait_for(message_sent_for(action.action_id))

    assert sender.calls == 2
    assert len(mails_with(smtp_sink, message_id)) == 1
    row = await delivery_row(settings.database_url, action.action_id)
    assert row is not None
    # The first attempt's rollback did not erase it: it was committed before the SMTP call.
    assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_unsupported_channel_is_recorded_and_unknown_template_dead_lettered(
    settings: NotifierSettings,
    smtp_sink: SmtpSink,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    debtor_id = f"C-{uuid4().hex[:8]}"
    address = f"{debtor_id.lower()}@example.com"
    by_sms = action_due(debtor_id, address, channel=Channel.SMS)
    unknown_template = action_due(debtor_id, address, template="no-such-template")
    unknown = as_orchestrator(unknown_template)
    sentinel = action_due(debtor_id, address)

    async with (
        running(settings),
        TopicReader(kafka_bootstrap, Topic.MESSAGE_SENT.value) as sent,
        TopicReader(kafka_bootstrap, dead_letter_topic(Topic.ACTION_DUE.value)) as dead,
    ):
        await produce(producer, as_orchestrator(by_sms))
        await produce(producer, unknown)
        await produce(producer, as_orchestrator(sentinel))
        await wait_for_mail(smtp_sink, f"<{sentinel.action_id}@recupero.local>")
        await sent.wait_for(message_sent_for(sentinel.action_id))

        dead_letter = await dead.wait_for(lambda r: header(r, "ce_id") == unknown.event_id)
        assert "UnknownTemplate" in header(dead_letter, "dlq_error")
        assert "no-such-template" in header(dead_letter, "dlq_error")
        assert not any(message_sent_for(by_sms.action_id)(r) for r in sent.records)

    # Only the sentinel reached the debtor's mailbox.
    assert len([info for info in smtp_sink.messages() if info["rcpt_tos"] == [address]]) == 1
    assert await delivery_row(settings.database_url, unknown_template.action_id) is None
    row = await delivery_row(settings.database_url, by_sms.action_id)
    assert row is not None
    assert (row["status"], row["channel"], row["attempts"]) == ("unsupported_channel", "sms", 0)
    assert row["tenant_id"] == TENANT

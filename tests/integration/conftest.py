"""Fixtures the integration tests share: a Kafka producer, an SMTP sink, the notifier's port and
the local WhatsApp Cloud API peer that calls the notifier's webhook there."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from recupero_devstack._util import free_port
from recupero_devstack.providers.whatsapp import WhatsAppCloudPeer
from recupero_devstack.smtp import SmtpSink
from tests.notifier_serving import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path / "mail", free_port(), free_port()) as sink:
        yield sink


@pytest.fixture
def notifier_port() -> int:
    return free_port()


@pytest.fixture
def whatsapp(notifier_port: int) -> Iterator[WhatsAppCloudPeer]:
    with WhatsAppCloudPeer(
        free_port(),
        access_token=ACCESS_TOKEN,
        app_secret=APP_SECRET,
        phone_number_id=PHONE_NUMBER_ID,
        verify_token=VERIFY_TOKEN,
        webhook_url=f"http://127.0.0.1:{notifier_port}/webhooks/whatsapp",
    ) as peer:
        yield peer

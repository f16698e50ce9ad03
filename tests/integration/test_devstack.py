"""Smoke test of the devstack: a real Kafka broker, PostgreSQL and the SMTP sink.

Proves aiokafka 0.14 works against the pinned Kafka (idempotent producer,
consumer groups with manual commits), that PostgreSQL starts as non-root, and
that the SMTP sink keeps mail and lists it over HTTP.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from recupero_devstack.kafka import KafkaBroker, free_port
from recupero_devstack.postgres import PostgresServer
from recupero_devstack.smtp import SmtpSink

pytestmark = pytest.mark.integration

CACHE_DIR = Path(__file__).parents[2] / ".cache"
N_MESSAGES = 100


@pytest.fixture(scope="module")
def devstack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devstack")


@pytest.fixture(scope="module")
def kafka(devstack_dir: Path) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(devstack_dir / "kafka", free_port(), free_port(), CACHE_DIR)
    started = time.monotonic()
    broker.start()
    print(f"kafka ready in {time.monotonic() - started:.1f}s at {broker.bootstrap}")
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def postgres(devstack_dir: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(devstack_dir / "postgres", free_port(), fast=True)
    started = time.monotonic()
    server.start()
    print(f"postgres ready in {time.monotonic() - started:.1f}s on port {server.port}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_sink(devstack_dir: Path) -> Iterator[SmtpSink]:
    with SmtpSink(devstack_dir / "mail", free_port(), free_port()) as sink:
        yield sink


async def test_kafka_idempotent_producer_and_consumer_group(kafka: KafkaBroker) -> None:
    topic = f"devstack-smoke-{uuid.uuid4().hex[:8]}"
    group = f"devstack-group-{uuid.uuid4().hex[:8]}"

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        # No explicit create: the broker auto-creates with num.partitions=6.
        futures = [
            await producer.send(
                topic,
                value=f"payload-{i}".encode(),
                key=f"debtor-{i}".encode(),
                headers=[("seq", str(i).encode()), ("ce_type", b"recupero.smoke")],
            )
            for i in range(N_MESSAGES)
        ]
        metadata = await asyncio.gather(*futures)
        assert len(await producer.partitions_for(topic)) == 6
    finally:
        await producer.stop()
    assert len({m.partition for m in metadata}) > 1, "keys should spread over partitions"

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: dict[int, dict[str, bytes]] = {}
    try:
        async with asyncio.timeout(60):
            while len(received) < N_MESSAGES:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for rec in records:
                        headers = dict(rec.headers)
                        seq = int(headers["seq"])
                        assert rec.value == f"payload-{seq}".encode()
                        assert rec.key == f"debtor-{seq}".encode()
                        received[seq] = headers
        await consumer.commit()
        partitions = consumer.assignment()
        committed = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()

    assert sorted(received) == list(range(N_MESSAGES))
    assert all(h["ce_type"] == b"recupero.smoke" for h in received.values())
    assert len(partitions) == 6
    assert sum(offset or 0 for offset in committed.values()) == N_MESSAGES

    # A new member of the same group resumes from the committed offsets.
    second = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await second.start()
    try:
        async with asyncio.timeout(30):
            while len(second.assignment()) < 6:
                assert await second.getmany(timeout_ms=500) == {}
        for _ in range(3):
            assert await second.getmany(timeout_ms=500) == {}
        end = await second.end_offsets(list(second.assignment()))
        for tp in second.assignment():
            assert await second.position(tp) == end[tp] == committed[tp]
    finally:
        await second.stop()


async def test_postgres_accepts_connections(postgres: PostgresServer) -> None:
    conn = await asyncpg.connect(postgres.dsn_for("postgres"))
    try:
        assert await conn.fetchval("select 1") == 1
    finally:
        await conn.close()

    postgres.ensure_database("recupero_smoke")
    postgres.ensure_database("recupero_smoke")  # idempotent
    assert postgres.url_for("recupero_smoke") == (
        f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/recupero_smoke"
    )
    conn = await asyncpg.connect(postgres.dsn_for("recupero_smoke"))
    try:
        assert await conn.fetchval("select current_database()") == "recupero_smoke"
    finally:
        await conn.close()


def test_smtp_sink_keeps_mail_and_lists_it(smtp_sink: SmtpSink) -> None:
    msg = EmailMessage()
    msg["From"] = "notifier@recupero.test"
    msg["To"] = "debtor@example.test"
    msg["Subject"] = "Payment reminder €"
    msg["Message-ID"] = "<smoke-1@recupero.test>"
    msg.set_content("Please pay.")
    with smtplib.SMTP("127.0.0.1", smtp_sink.smtp_port, timeout=10) as client:
        client.send_message(msg)

    with httpx.Client(base_url=smtp_sink.api_url, timeout=10) as http:
        listed = http.get("/messages").json()
        assert len(listed) == 1
        item = listed[0]
        assert set(item) == {"id", "mail_from", "rcpt_tos", "subject", "message_id", "received_at"}
        assert item["mail_from"] == "notifier@recupero.test"
        assert item["rcpt_tos"] == ["debtor@example.test"]
        assert item["subject"] == "Payment reminder €"
        assert item["message_id"] == "<smoke-1@recupero.test>"
        assert (smtp_sink.mailbox_dir / f"{item['id']}.eml").is_file()
        raw = http.get(f"/messages/{item['id']}")
        assert raw.status_code == 200
        assert b"Please pay." in raw.content

        assert http.delete("/messages").status_code == 204
        assert http.get("/messages").json() == []

"""The only module of the kit that talks to Kafka directly: the publisher and topic admin.

Events leave through librdkafka (confluent-kafka): the outbox relay publishes hundreds of thousands
of events after a large import, and librdkafka produces about three times as many messages a second
as aiokafka on this machine (bench/RESULTS.md). Consumers stay on aiokafka.
"""

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import confluent_kafka
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    value: bytes
    key: bytes | None
    headers: Sequence[tuple[str, bytes]]


class PublishFailed(RuntimeError):
    """Some messages were not acknowledged by the broker; the caller sends them all again."""


class Publisher:
    """Idempotent (a retried send never duplicates a message on its partition), acks from all
    in-sync replicas, and the same key-to-partition mapping as the Java client and aiokafka
    (murmur2), so a debtor's events land on one partition whoever produced them."""

    def __init__(self, bootstrap_servers: str, timeout_seconds: float = 30.0) -> None:
        self._timeout = timeout_seconds
        self._producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                # JSON events shrink about fourfold: the broker stores and copies a quarter of
                # the bytes (its CPU for 294,000 import events fell from 2.9 to 0.7 s). Consumers
                # (aiokafka) decompress with cramjam, the `lz4` extra of aiokafka.
                "compression.type": "lz4",
                # Only failures call back: a million deliveries are not a million Python calls.
                "delivery.report.only.error": True,
                "partitioner": "murmur2_random",
                "message.timeout.ms": int(timeout_seconds * 1000),
                "log_level": 3,
            }
        )

    async def send_all(self, messages: Iterable[OutgoingMessage]) -> int:
        """Send and wait until the broker has every one; raises `PublishFailed` otherwise."""
        failures: list[str] = []

        def delivered(error: confluent_kafka.KafkaError | None, _: object) -> None:
            if error is not None:
                failures.append(str(error))

        sent = 0
        for message in messages:
            headers: list[tuple[str, str | bytes | None]] = [*message.headers]
            while True:
                try:
                    self._producer.produce(
                        message.topic,
                        value=message.value,
                        key=message.key,
                        headers=headers,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    await asyncio.to_thread(self._producer.poll, 0.05)
            sent += 1
        pending = await asyncio.to_thread(self._producer.flush, self._timeout)
        if pending or failures:
            raise PublishFailed(
                f"{pending} of {sent} messages unacknowledged, {len(failures)} failed"
                + (f"; first error: {failures[0]}" if failures else "")
            )
        return sent

    async def reachable(self) -> None:
        """Raises unless a broker answers a metadata request."""
        await asyncio.to_thread(self._producer.list_topics, timeout=5)

    async def close(self) -> None:
        """Flush what is queued, then disconnect (no reconnect attempts once the broker is gone)."""
        await asyncio.to_thread(self._producer.flush, self._timeout)
        await asyncio.to_thread(self._producer.close)


async def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int = 6) -> None:
    """Create topics that do not exist yet (a consumer must not race the first producer)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=topic, num_partitions=partitions, replication_factor=1)
            for topic in topics
            if topic not in existing
        ]
        if missing:
            # Another service may create the same topics at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def kafka_reachable(bootstrap_servers: str) -> None:
    """Raises unless a broker answers a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        await admin.start()
    finally:
        await admin.close()

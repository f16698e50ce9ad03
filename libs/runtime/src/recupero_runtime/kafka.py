"""The only module of the kit that talks to Kafka directly: producer factory and topic admin."""

import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


def create_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # Idempotent producer: a retried send never duplicates a message on the partition.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )


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

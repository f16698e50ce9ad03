"""Reading topics as a consumer would: what tests assert about published events."""

import asyncio
import time
from collections.abc import Callable
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from recupero_events import EventPayload, Topic, decode


async def read_topics(bootstrap: str, topics: list[str]) -> dict[str, list[ConsumerRecord]]:
    """Every message on the topics, from the beginning to the current end."""
    # A fresh group reading from the earliest offset (aiokafka 0.14's group-less consumer raises
    # CancelledError on stop()).
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records: dict[str, list[ConsumerRecord]] = {topic: [] for topic in topics}

        def keep(batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
            for tp, received in batch.items():
                records[tp.topic].extend(received)

        while not consumer.assignment():
            keep(await consumer.getmany(timeout_ms=500))
        partitions = list(consumer.assignment())
        end = await consumer.end_offsets(partitions)

        async def behind() -> bool:
            positions = [await consumer.position(tp) for tp in partitions]
            return any(
                position < end[tp] for position, tp in zip(positions, partitions, strict=True)
            )

        while await behind():
            keep(await consumer.getmany(timeout_ms=1000))
        return records
    finally:
        await consumer.stop()


def of_tenant(records: list[ConsumerRecord], tenant_id: str) -> list[ConsumerRecord]:
    return [r for r in records if (("ce_tenantid", tenant_id.encode()) in r.headers)]


class EventStream:
    """Events of some topics, decoded, read from the beginning by a fresh group while a test
    runs; `wait_for` what must happen, `settle` to let what must not happen show up."""

    def __init__(self, bootstrap: str, *topics: Topic, timeout_s: float = 60.0) -> None:
        self.payloads: list[EventPayload] = []
        self._timeout_s = timeout_s
        self._consumer = AIOKafkaConsumer(
            *(topic.value for topic in topics),
            bootstrap_servers=bootstrap,
            group_id=f"test-{uuid4()}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    async def __aenter__(self) -> "EventStream":
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def _read(self) -> None:
        for records in (await self._consumer.getmany(timeout_ms=200)).values():
            self.payloads.extend(decode(r.topic, r.value, list(r.headers)).payload for r in records)

    async def wait_for(self, found: Callable[[EventPayload], bool]) -> EventPayload:
        async with asyncio.timeout(self._timeout_s):
            while True:
                for payload in self.payloads:
                    if found(payload):
                        return payload
                await self._read()

    async def settle(self, seconds: float = 2.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._read()

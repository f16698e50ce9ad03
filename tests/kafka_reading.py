"""Reading topics as a consumer would: what tests assert about published events."""

from uuid import uuid4

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


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

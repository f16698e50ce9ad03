"""Idempotent consumer runner.

For each message: decode the CloudEvent, then in ONE transaction record `(consumer, event id)` in the
inbox and apply the handler's effects (and any events it publishes through the outbox); commit; only
then commit the Kafka offset. A redelivered message hits the inbox's primary key and is skipped.
A message that cannot be decoded, or whose handler keeps failing, goes to `<topic>.dlq` with the
error so the partition keeps flowing; database outages are retried, never dead-lettered.

A topic may opt in to batches (`Batched`): the new records of a poll are handled in one call and
ONE transaction, their inbox rows written in one statement (duplicates among them skipped before
the handler sees them), the offsets committed after that transaction. A transient error retries
the whole batch (its rollback undoes every inbox row); any other error handles the batch's records
again one at a time through the same handler, so only the bad record is dead-lettered.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from recupero_events import DecodedEvent, EventDecodeError, dead_letter_topic, decode
from recupero_runtime.db import UnitOfWork
from recupero_runtime.kafka import OutgoingMessage, Publisher

log = structlog.get_logger()

CONSUMED = Counter(
    "recupero_events_consumed_total",
    "Events handled by consumers",
    ["consumer", "topic", "outcome"],
)

Handler = Callable[[DecodedEvent, UnitOfWork[Any]], Awaitable[None]]
BatchHandler = Callable[[Sequence[DecodedEvent], UnitOfWork[Any]], Awaitable[None]]
UnitOfWorkFactory = Callable[[str | None], UnitOfWork[Any]]


class RetryLater(Exception):
    """Raised by a handler when the message is fine but a dependency is not (a provider's 429 or
    4xx-temporary reply): the message is retried with backoff, never dead-lettered."""


@dataclass(frozen=True)
class Batched:
    """Opt-in for one topic: `handle` gets the new events of a polled batch at once (in offset
    order per partition, each event once), in one unit of work the consumer commits. It must
    give each event the effects the per-record handler would (it is also called with a single
    event when a batch fails and its records are handled one at a time)."""

    handle: BatchHandler


# PostgreSQL's "try the transaction again": serialization failure, deadlock detected.
_RETRY_TRANSACTION = {"40001", "40P01"}


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, RetryLater | OperationalError | InterfaceError | ConnectionError | OSError):
        return True
    # Raised by asyncpg itself (statements on the raw connection) or wrapped by SQLAlchemy.
    for error in (exc, getattr(exc, "orig", None)):
        if getattr(error, "sqlstate", None) in _RETRY_TRANSACTION:
            return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        bootstrap_servers: str,
        handlers: Mapping[str, Handler | Batched],
        unit_of_work: UnitOfWorkFactory,
        dead_letters: Publisher,
        max_attempts: int = 3,
        batch_size: int = 100,
        concurrency: int = 1,
    ) -> None:
        self.name = name
        self._bootstrap = bootstrap_servers
        self._handlers = dict(handlers)
        self._unit_of_work = unit_of_work
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the message in hand, commit its offset, then leave the group."""
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self._handlers,
            bootstrap_servers=self._bootstrap,
            group_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._batch_size,
        )
        await consumer.start()
        try:
            while not self._stopping.is_set():
                polled = await consumer.getmany(timeout_ms=200, max_records=self._batch_size)
                batched = {
                    partition: records
                    for partition, records in polled.items()
                    if isinstance(self._handlers[partition.topic], Batched)
                }
                if batched:
                    await self._process_batched(batched)
                    await _commit(
                        consumer,
                        {
                            partition: records[-1].offset + 1
                            for partition, records in batched.items()
                        },
                    )
                batch = {p: records for p, records in polled.items() if p not in batched}
                if not batch:
                    continue
                if self._concurrency > 1:
                    done_up_to = await self._process_concurrently(batch)
                    if done_up_to:
                        await _commit(
                            consumer,
                            {partition: offset + 1 for partition, offset in done_up_to.items()},
                        )
                    continue
                for partition, records in batch.items():
                    done = await self._process_partition(records)
                    if done is not None:
                        await _commit(consumer, {partition: done + 1})
                    if self._stopping.is_set():
                        break
        finally:
            await consumer.stop()

    async def _process_partition(self, records: list[ConsumerRecord]) -> int | None:
        last_done: int | None = None
        for record in records:
            if self._stopping.is_set() and last_done is not None:
                break
            await self._process(record)
            last_done = record.offset
        return last_done

    async def _process_concurrently(
        self, batch: Mapping[TopicPartition, list[ConsumerRecord]]
    ) -> dict[TopicPartition, int]:
        """Up to `concurrency` records at once, those of one key (one debtor) in order: a
        handler that waits on a provider does not hold up the other debtors. Returns, per
        partition, the last offset up to which every record was processed."""
        slots = asyncio.Semaphore(self._concurrency)
        processed: set[tuple[TopicPartition, int]] = set()

        async def in_order(partition: TopicPartition, records: list[ConsumerRecord]) -> None:
            for record in records:
                if self._stopping.is_set():
                    return
                async with slots:
                    await self._process(record)
                processed.add((partition, record.offset))

        keys: list[Awaitable[None]] = []
        for partition, records in batch.items():
            by_key: dict[bytes | None, list[ConsumerRecord]] = {}
            for record in records:
                by_key.setdefault(record.key, []).append(record)
            keys += [in_order(partition, same_key) for same_key in by_key.values()]
        await asyncio.gather(*keys)
        done_up_to: dict[TopicPartition, int] = {}
        for partition, records in batch.items():
            for record in records:
                if (partition, record.offset) not in processed:
                    break
                done_up_to[partition] = record.offset
        return done_up_to

    async def _process(self, record: ConsumerRecord) -> None:
        event = await self._decode(record)
        if event is not None:
            await self._handle_one(record, event)

    async def _decode(self, record: ConsumerRecord) -> DecodedEvent | None:
        """The record's event; None when it cannot be decoded (then it is dead-lettered)."""
        try:
            return decode(record.topic, record.value, list(record.headers))
        except EventDecodeError as exc:
            with structlog.contextvars.bound_contextvars(
                topic=record.topic, partition=record.partition, offset=record.offset
            ):
                await self._dead_letter(record, str(exc))
            return None

    async def _handle_one(self, record: ConsumerRecord, event: DecodedEvent) -> None:
        with structlog.contextvars.bound_contextvars(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_id=event.event_id,
            correlation_id=event.correlation_id,
            tenant_id=event.payload.tenant_id,
        ):
            await self._handle(record, event)

    async def _process_batched(self, batch: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        """Every record of these partitions, one transaction per topic (see `Batched`)."""
        by_topic: dict[str, list[tuple[ConsumerRecord, DecodedEvent]]] = {}
        for partition, records in batch.items():
            for record in records:
                event = await self._decode(record)
                if event is not None:
                    by_topic.setdefault(partition.topic, []).append((record, event))
        for topic, decoded in by_topic.items():
            with structlog.contextvars.bound_contextvars(topic=topic, batch=len(decoded)):
                await self._handle_batch(topic, decoded)

    async def _handle_batch(
        self, topic: str, decoded: list[tuple[ConsumerRecord, DecodedEvent]]
    ) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                applied = await self._apply_batch(topic, [event for _, event in decoded])
            except Exception as exc:
                if _is_transient(exc):
                    log.warning("consumer_transient_error", error=str(exc), attempt=attempt)
                    await asyncio.sleep(min(2**attempt * 0.1, 5.0))
                    continue
                # One bad record must not hold up the others, nor be dead-lettered with them.
                log.warning("consumer_batch_failed_one_at_a_time", error=repr(exc))
                for record, event in decoded:
                    await self._handle_one(record, event)
                return
            CONSUMED.labels(self.name, topic, "applied").inc(applied)
            CONSUMED.labels(self.name, topic, "duplicate").inc(len(decoded) - applied)
            return

    async def _apply_batch(self, topic: str, events: Sequence[DecodedEvent]) -> int:
        """The batch's inbox rows in one statement, the handler on the events seen for the first
        time, one commit. Returns how many were applied."""
        handler = self._handlers[topic]
        assert isinstance(handler, Batched)
        first_of_each: dict[str, DecodedEvent] = {}
        for event in events:
            first_of_each.setdefault(event.event_id, event)
        unique = list(first_of_each.values())
        async with self._unit_of_work(None) as uow:
            inbox = uow.inbox
            first_time = set(
                await uow.session.scalars(
                    text(
                        f"INSERT INTO {inbox.fullname} (consumer, event_id, tenant_id, topic)"
                        " SELECT :consumer, event_id, tenant_id, :topic"
                        " FROM unnest(CAST(:event_ids AS text[]), CAST(:tenant_ids AS text[]))"
                        " AS batch(event_id, tenant_id)"
                        " ON CONFLICT DO NOTHING RETURNING event_id"
                    ),
                    {
                        "consumer": self.name,
                        "topic": topic,
                        "event_ids": [event.event_id for event in unique],
                        "tenant_ids": [event.payload.tenant_id for event in unique],
                    },
                )
            )
            fresh = [event for event in unique if event.event_id in first_time]
            if fresh:
                await handler.handle(fresh, uow)
            await uow.commit()
            return len(fresh)

    async def _handle(self, record: ConsumerRecord, event: DecodedEvent) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._apply(record.topic, event)
                CONSUMED.labels(self.name, record.topic, outcome).inc()
                return
            except Exception as exc:
                if _is_transient(exc):
                    log.warning("consumer_transient_error", error=str(exc), attempt=attempt)
                    await asyncio.sleep(min(2**attempt * 0.1, 5.0))
                    continue
                if attempt < self._max_attempts:
                    log.warning("consumer_handler_failed", error=repr(exc), attempt=attempt)
                    await asyncio.sleep(0.1 * attempt)
                    continue
                log.exception("consumer_gave_up")
                await self._dead_letter(record, f"{type(exc).__name__}: {exc}")
                return

    async def _apply(self, topic: str, event: DecodedEvent) -> str:
        async with self._unit_of_work(event.correlation_id) as uow:
            inbox = uow.inbox
            first_time = await uow.session.scalar(
                insert(inbox)
                .values(
                    consumer=self.name,
                    event_id=event.event_id,
                    tenant_id=event.payload.tenant_id,
                    topic=topic,
                )
                .on_conflict_do_nothing()
                .returning(inbox.c.event_id)
            )
            if first_time is None:
                return "duplicate"
            handler = self._handlers[topic]
            if isinstance(handler, Batched):
                await handler.handle([event], uow)
            else:
                await handler(event, uow)
            await uow.commit()
            return "applied"

    async def _dead_letter(self, record: ConsumerRecord, error: str) -> None:
        log.error("dead_lettered", error=error)
        CONSUMED.labels(self.name, record.topic, "dead_lettered").inc()
        headers = [
            *list(record.headers),
            ("dlq_error", error[:4000].encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_original", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("dlq_at", datetime.now(UTC).isoformat().encode()),
        ]
        await self._dead_letters.send_all(
            [OutgoingMessage(dead_letter_topic(record.topic), record.value, record.key, headers)]
        )


async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    """Commit processed offsets. A partition taken away by a rebalance meanwhile cannot be
    committed; its new owner gets those records again and the inbox skips them."""
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as error:
        log.warning("offsets_not_committed_after_rebalance", error=str(error))

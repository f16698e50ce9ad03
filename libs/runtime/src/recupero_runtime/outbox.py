"""The relay: publishes committed outbox rows to Kafka in order and deletes them once sent."""

import asyncio
import collections
import contextlib
import json
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence

import asyncpg
import structlog
from prometheus_client import Counter
from sqlalchemy import (
    ColumnElement,
    Insert,
    Subquery,
    Table,
    Text,
    Uuid,
    cast,
    column,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recupero_events import EventPayload, cloudevent_headers, event_type_of, partition_key
from recupero_runtime.db import ServiceSchema, asyncpg_connection
from recupero_runtime.kafka import OutgoingMessage, Publisher

log = structlog.get_logger()

PUBLISHED = Counter("recupero_outbox_published_total", "Events relayed to Kafka", ["topic"])


# How long a relay woken by a commit waits for the commits right behind it before its pass.
WAKE_COALESCE_SECONDS = 0.003


class OutboxRelay:
    """One relay per service publishes at a time (advisory lock), so order per debtor holds."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        schema: ServiceSchema,
        poll_interval: float,
        batch_size: int = 5000,
    ) -> None:
        self._sessions = sessions
        self._schema = schema
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        # Deterministic across processes (str hash is salted per process).
        self._lock_id = zlib.crc32(f"outbox:{schema.name}".encode())
        # Where the previous batch ended when more was waiting. Rows just deleted still sit in
        # the index until vacuum; starting each scan after them keeps a 300,000-event backlog
        # linear.
        self._after_id = 0

    def notify(self) -> None:
        """Called after a commit that wrote outbox rows: publish now rather than at next poll."""
        self._wake.set()

    async def run(self, publisher: Publisher) -> None:
        while True:
            try:
                await self.publish_pending(publisher)
                if self.behind:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox_relay_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            if self._wake.is_set():
                # Commits come in bursts: a few milliseconds let the ones right behind this wake
                # share its pass (a pass is ~8 round trips and a Kafka flush, whatever it carries).
                await asyncio.sleep(WAKE_COALESCE_SECONDS)
            self._wake.clear()

    async def publish_pending(self, publisher: Publisher) -> int:
        """Publish up to a batch of events (a batch row counts as its events); returns how many."""
        table = f"{self._schema.name}.outbox"
        async with self._sessions() as session, session.begin():
            raw = await asyncpg_connection(session)
            # Right after a bulk insert the table's statistics are stale, and the planner reads
            # the whole backlog and sorts it for every batch (a 300,000-event relay went
            # quadratic). Walking the primary key in id order is right at any size. The settings
            # (`SET LOCAL`) ride in the lock's round trip.
            if not await raw.fetchval(
                "SELECT pg_try_advisory_xact_lock($1), set_config('enable_bitmapscan', 'off', true),"
                " set_config('enable_sort', 'off', true)",
                self._lock_id,
            ):
                return 0
            head = await raw.fetch(
                f"SELECT id, coalesce(batch_events, 1) AS events FROM {table}"
                f" WHERE id > $1 ORDER BY id LIMIT $2",
                self._after_id,
                self._batch_size,
            )
            ids = _first_rows_of(head, self._batch_size)
            # More is waiting right after these: the next scan starts here. Otherwise the relay
            # caught up and starts from the beginning, so a row with a lower id that committed
            # later is never skipped.
            self._after_id = ids[-1] if len(ids) < len(head) or len(head) == self._batch_size else 0
            if not ids:
                return 0
            rows = await raw.fetch(
                f"SELECT id, event_id::text, tenant_id, debtor_id, topic, event_type, source,"
                f" correlation_id, occurred_at, batch_events, value FROM {table}"
                f" WHERE id = ANY($1::bigint[]) ORDER BY id",
                ids,
            )
            sent = await publisher.send_all(message for row in rows for message in _messages(row))
            # Sent rows are deleted (Kafka keeps the events): deleting costs a fifth of marking
            # them, which rewrote every row. Exactly these rows: a lower id committed later is
            # not among them.
            await raw.execute(f"DELETE FROM {table} WHERE id = ANY($1::bigint[])", ids)
            topics: collections.Counter[str] = collections.Counter()
            for row in rows:
                topics[row["topic"]] += row["batch_events"] or 1
            for topic, count in topics.items():
                PUBLISHED.labels(topic).inc(count)
            return sent

    @property
    def behind(self) -> bool:
        """The last scan left events waiting right after it."""
        return self._after_id != 0


def _first_rows_of(head: list[asyncpg.Record], events: int) -> list[int]:
    """The ids of the leading rows holding at most `events` events (at least one row)."""
    ids: list[int] = []
    total = 0
    for row in head:
        total += row["events"]
        if ids and total > events:
            break
        ids.append(row["id"])
    return ids


def _messages(row: asyncpg.Record) -> Iterator[OutgoingMessage]:
    """The Kafka messages of one outbox row: its event, or each event of a batch row."""
    tenant_id, event_type, source = row["tenant_id"], row["event_type"], row["source"]
    topic, occurred_at, correlation_id = row["topic"], row["occurred_at"], row["correlation_id"]
    for event_id, debtor_id, value in events_of(
        row["event_id"], row["debtor_id"], row["batch_events"], row["value"]
    ):
        yield OutgoingMessage(
            topic=topic,
            value=value,
            key=partition_key(tenant_id, debtor_id),
            headers=cloudevent_headers(
                event_type=event_type,
                event_id=event_id,
                source=source,
                time=occurred_at,
                tenant_id=tenant_id,
                debtor_id=debtor_id,
                correlation_id=correlation_id,
            ),
        )


# A batch row's value: one line per event, `event id TAB debtor id as a JSON string TAB payload`.
# Neither a JSON string nor JSON text holds a raw tab or newline, so the split is exact.
BATCH_EVENTS = 1000


def events_of(
    event_id: str, debtor_id: str, batch_events: int | None, value: bytes
) -> Iterator[tuple[str, str, bytes]]:
    """(event id, debtor id, payload) of each event an outbox row holds."""
    if batch_events is None:
        yield event_id, debtor_id, value
        return
    for line in value.split(b"\n"):
        batched_id, batched_debtor_id, payload = line.split(b"\t", 2)
        # A JSON string with no escape is its text between the quotes: the JSON decoder, called
        # per event, was most of the cost of unpacking a batch row.
        debtor_id = (
            batched_debtor_id[1:-1].decode()
            if b"\\" not in batched_debtor_id
            else json.loads(batched_debtor_id)
        )
        yield batched_id.decode(), debtor_id, payload


def insert_event_batches(
    outbox: Table,
    events: Subquery,
    *,
    tenant_id: ColumnElement[str],
    topic: str,
    event_type: str,
    source: ColumnElement[str],
    correlation_id: ColumnElement[str | None],
) -> Insert:
    """The outbox rows of many events of one tenant, topic and type, `BATCH_EVENTS` to a row.

    `events` has the columns `event_id`, `debtor_id` and `payload` (the event's JSON as text). A
    million events are a thousand rows: PostgreSQL writes, indexes and deletes a thousand rows, and
    the relay decodes a thousand, instead of a million of each.
    """
    e = events.c
    numbered = select(
        e.debtor_id,
        cast(
            cast(e.event_id, Text)
            .op("||")(literal("\t", Text))
            .op("||")(cast(func.to_json(e.debtor_id), Text))
            .op("||")(literal("\t", Text))
            .op("||")(e.payload),
            Text,
        ).label("line"),
        ((func.row_number().over() - 1) // BATCH_EVENTS).label("batch"),
    ).subquery("numbered")
    n = numbered.c
    return insert(outbox).from_select(
        [
            "event_id",
            "tenant_id",
            "debtor_id",
            "topic",
            "event_type",
            "source",
            "correlation_id",
            "batch_events",
            "value",
        ],
        select(
            func.gen_random_uuid(),
            tenant_id,
            # The first debtor of the batch; each event names its own.
            func.min(n.debtor_id),
            literal(topic, Text),
            literal(event_type, Text),
            source,
            correlation_id,
            func.count(),
            func.convert_to(func.string_agg(n.line, literal("\n", Text)), literal("UTF8", Text)),
        ).group_by(n.batch),
    )


async def insert_payload_batches(
    session: AsyncSession, outbox: Table, events: Sequence[EventPayload], source: str
) -> None:
    """Events built in Python, in outbox batch rows (`insert_event_batches`), a tenant and an
    event type at a time: the relay publishes each as its own Kafka message with its own id, key
    and headers, as if the unit of work had published it, while PostgreSQL writes and deletes a
    row per thousand events. Written in the caller's transaction, so they leave only if it
    commits."""
    groups: dict[tuple[str, type[EventPayload]], list[EventPayload]] = defaultdict(list)
    for event in events:
        groups[(event.tenant_id, type(event))].append(event)
    for (tenant_id, kind), group in groups.items():
        rows = (
            text(
                # Each event's id drawn by PostgreSQL: not a `uuid4()` each in Python, then
                # checked again element by element as an array parameter.
                "SELECT gen_random_uuid() AS event_id, debtor_id, payload"
                " FROM unnest(CAST(:debtor_ids AS text[]), CAST(:payloads AS text[]))"
                " AS events(debtor_id, payload)"
            )
            .bindparams(
                debtor_ids=[event.debtor_id for event in group],
                payloads=[event.model_dump_json() for event in group],
            )
            .columns(column("event_id", Uuid), column("debtor_id", Text), column("payload", Text))
            .subquery("events")
        )
        await session.execute(
            insert_event_batches(
                outbox,
                rows,
                tenant_id=literal(tenant_id, Text),
                topic=kind.topic.value,
                event_type=event_type_of(kind),
                source=literal(source, Text),
                correlation_id=literal(None, Text),
            )
        )

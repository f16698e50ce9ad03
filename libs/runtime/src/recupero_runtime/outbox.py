"""The relay: publishes committed outbox rows to Kafka in order and marks them sent."""

import asyncio
import contextlib
import zlib

import structlog
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter
from sqlalchemy import BigInteger, any_, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recupero_events import cloudevent_headers, partition_key
from recupero_runtime.db import ServiceSchema

log = structlog.get_logger()

PUBLISHED = Counter("recupero_outbox_published_total", "Events relayed to Kafka", ["topic"])


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
        # Where the previous full batch ended. Rows just marked sent still sit in the partial
        # index until vacuum; starting each scan after them keeps a 300,000-event backlog linear.
        # A partial batch means the relay caught up: the next scan starts from the beginning
        # again, so a row with a lower id that committed later is never skipped.
        self._after_id = 0

    def notify(self) -> None:
        """Called after a commit that wrote outbox rows: publish now rather than at next poll."""
        self._wake.set()

    async def run(self, producer: AIOKafkaProducer) -> None:
        while True:
            try:
                published = await self.publish_pending(producer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox_relay_failed")
                published = 0
            if published < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                self._wake.clear()

    async def publish_pending(self, producer: AIOKafkaProducer) -> int:
        outbox = self._schema.outbox
        async with self._sessions() as session, session.begin():
            locked = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": self._lock_id}
            )
            if not locked:
                return 0
            rows = (
                await session.execute(
                    select(outbox)
                    .where(outbox.c.published_at.is_(None), outbox.c.id > self._after_id)
                    .order_by(outbox.c.id)
                    .limit(self._batch_size)
                )
            ).all()
            self._after_id = rows[-1].id if len(rows) == self._batch_size else 0
            if not rows:
                return 0
            sends = [
                await producer.send(
                    row.topic,
                    value=row.value,
                    key=partition_key(row.tenant_id, row.debtor_id),
                    headers=cloudevent_headers(
                        event_type=row.event_type,
                        event_id=row.event_id,
                        source=row.source,
                        time=row.occurred_at,
                        tenant_id=row.tenant_id,
                        debtor_id=row.debtor_id,
                        correlation_id=row.correlation_id,
                    ),
                )
                for row in rows
            ]
            await asyncio.gather(*sends)
            await session.execute(
                update(outbox)
                # Exactly the rows sent: a lower id committed later is not yet among them.
                .where(outbox.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
                .values(published_at=text("now()")),
                {"ids": [row.id for row in rows]},
            )
            for row in rows:
                PUBLISHED.labels(row.topic).inc()
            return len(rows)

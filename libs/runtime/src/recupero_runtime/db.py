"""Engine, unit of work and schema migrations.

The unit of work is the one owner of a transaction: handlers and repositories add to its session and
its outbox; the entrypoint (request or message boundary) commits.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar
from uuid import uuid4

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, Table, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from recupero_events import EventPayload, event_type_of
from recupero_runtime.tables import inbox_table, outbox_table


@dataclass(frozen=True)
class ServiceSchema:
    """A service's tables: its own plus the outbox and inbox every service has."""

    metadata: MetaData
    outbox: Table
    inbox: Table

    @classmethod
    def create(cls, schema: str) -> "ServiceSchema":
        metadata = MetaData(schema=schema)
        return cls(metadata=metadata, outbox=outbox_table(metadata), inbox=inbox_table(metadata))

    @property
    def name(self) -> str:
        assert self.metadata.schema is not None
        return self.metadata.schema


def create_engine(database_url: str, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=10, pool_pre_ping=pre_ping
    )


async def asyncpg_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under `session`'s transaction, for COPY and for bulk reads that
    would cost several times more as SQLAlchemy rows."""
    connection = await session.connection()
    raw: Any = (await connection.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with its first statement, not at `begin()`.
        # Without one, each statement on the raw connection would commit on its own: a lock
        # (the relay's advisory lock, FOR UPDATE) would end with its statement, and a rollback
        # would not undo the writes.
        await connection.execute(text("SELECT 1"))
    return raw


async def prepare_bulk_transaction(session: AsyncSession, work_mem: str) -> None:
    """Settings for a transaction that works through a whole portfolio in a few statements and
    renders event JSON in SQL: no JIT (compiling each statement's expressions cost about a second
    apiece, more than it saved), sorts in memory up to `work_mem`, and dates and instants in the
    contract's formats (ISO 8601 dates, UTC)."""
    await session.execute(
        text(
            "SELECT set_config('jit', 'off', true), set_config('work_mem', :work_mem, true),"
            " set_config('DateStyle', 'ISO', true), set_config('TimeZone', 'UTC', true)"
        ),
        {"work_mem": work_mem},
    )


Repo = TypeVar("Repo")
Repo_co = TypeVar("Repo_co", covariant=True)


class Work(Protocol[Repo_co]):
    """What a handler sees of a unit of work; tests pass an in-memory fake of the same shape."""

    @property
    def repo(self) -> Repo_co: ...

    @property
    def source(self) -> str:
        """CloudEvents `source` of the events this unit of work publishes."""
        ...

    def publish(self, payload: EventPayload, correlation_id: str | None = None) -> str: ...


class UnitOfWork(Generic[Repo]):
    """One database transaction plus the events it will publish through the outbox."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        schema: ServiceSchema,
        repositories: Callable[[AsyncSession], Repo],
        source: str,
        correlation_id: str | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._schema = schema
        self._repositories = repositories
        self._source = source
        self._on_commit = on_commit
        self.correlation_id = correlation_id
        self._pending: list[dict[str, object]] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        await self.session.begin()
        self._repo = self._repositories(self.session)
        return self

    @property
    def repo(self) -> Repo:
        return self._repo

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Anything not committed explicitly is rolled back, outbox rows included.
        if self.session.in_transaction():
            await self.session.rollback()
        await self.session.close()

    @property
    def inbox(self) -> Table:
        return self._schema.inbox

    def publish(self, payload: EventPayload, correlation_id: str | None = None) -> str:
        """Queue an event; it leaves for Kafka only if this transaction commits. A unit of work
        that handles several events (a consumer's batch) names the one each event answers."""
        event_id = str(uuid4())
        self._pending.append(
            {
                "event_id": event_id,
                "tenant_id": payload.tenant_id,
                "debtor_id": payload.debtor_id,
                "topic": payload.topic.value,
                "event_type": event_type_of(type(payload)),
                "source": self.source,
                "correlation_id": correlation_id or self.correlation_id,
                "occurred_at": datetime.now(UTC),
                "value": payload.model_dump_json().encode(),
            }
        )
        return event_id

    @property
    def source(self) -> str:
        """CloudEvents `source` of what this unit of work publishes."""
        return f"recupero/{self._source}"

    async def commit(self) -> None:
        published = bool(self._pending)
        if published:
            await self.session.execute(self._schema.outbox.insert(), self._pending)
            self._pending = []
        await self.session.commit()
        if published and self._on_commit is not None:
            self._on_commit()


MIGRATION_LOCK_ID = 7_461_352


def _alembic_config(script_location: Path, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["schema"] = schema
    return config


async def upgrade_schema(engine: AsyncEngine, script_location: Path, schema: str) -> None:
    """Create the service's schema if needed and run its Alembic migrations to head.

    An advisory lock serialises replicas that start at the same time.
    """

    def run(connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        config = _alembic_config(script_location, schema)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


def autogenerate_revision(
    database_url: str, script_location: Path, schema: str, message: str
) -> None:
    """Write a new migration from the difference between the models and the database."""

    async def main() -> None:
        engine = create_engine(database_url)

        def run(connection: Connection) -> None:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            config = _alembic_config(script_location, schema)
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True)

        async with engine.begin() as connection:
            await connection.run_sync(run)
        await engine.dispose()

    asyncio.run(main())

"""Tables every service owns in its own schema: the outbox and the inbox of processed events."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID


def outbox_table(metadata: MetaData) -> Table:
    """Events written in the same transaction as the state change that caused them.

    A row holds the payload JSON and the CloudEvents attributes; the relay turns them into Kafka
    headers and the `{tenant}:{debtor}` key when it publishes, then deletes the row. Bulk writers
    (an import of 300,000 debtors) write batch rows instead: `batch_events` events of one tenant,
    topic and type in one value (see `recupero_runtime.outbox.insert_event_batches`); the column
    is NULL on a row that is one event.
    """
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        Column("tenant_id", Text, nullable=False),
        Column("debtor_id", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("correlation_id", Text),
        Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("value", LargeBinary, nullable=False),
        Column("batch_events", Integer),
    )


def inbox_table(metadata: MetaData) -> Table:
    """Events a consumer already applied; the primary key makes a redelivery a no-op."""
    return Table(
        "processed_events",
        metadata,
        Column("consumer", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("tenant_id", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )

"""Portal-api's read models, built only from the events on the six topics (never from other
services' tables): debtors as last reported, payments seen, and one timeline row per event."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("portal_api")
metadata = schema.metadata

debtors = Table(
    "debtors",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    # Contact and snapshot come from the newest creditor snapshot seen, whether it arrived in
    # debt-imported or in debtor-segmented (the two topics are not ordered with each other).
    Column("contact", JSONB, nullable=False),
    Column("snapshot_balance_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("snapshot_as_of", DateTime(timezone=True), nullable=False),
    # Only debt-imported lists documents; null until one arrives.
    Column("documents", JSONB, nullable=False),
    Column("documents_as_of", DateTime(timezone=True)),
    # Only debtor-segmented sets these; null until one arrives.
    Column("segment", Text),
    Column("stage", Text),
    Column("days_past_due", Integer),
    Column("segmented_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "debtor_id"),
    Index("debtors_by_segment", "tenant_id", "segment", "debtor_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("payments_by_debtor", "tenant_id", "debtor_id", "received_at"),
)

timeline = Table(
    "timeline",
    metadata,
    # Insertion order breaks ties between events that happened at the same instant.
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("event_id", Text, nullable=False, unique=True),
    Column("topic", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("summary", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("timeline_by_debtor", "tenant_id", "debtor_id", "occurred_at", "id"),
    Index("timeline_by_topic", "tenant_id", "topic", "debtor_id"),
)

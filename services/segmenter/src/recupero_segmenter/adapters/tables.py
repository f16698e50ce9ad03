"""Segmenter's own schema: each debtor's latest snapshot and placement, payments, history."""

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("segmenter")
metadata = schema.metadata

debtors = Table(
    "debtors",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("contact", JSONB, nullable=False),
    Column("snapshot_balance_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("snapshot_as_of", DateTime(timezone=True), nullable=False),
    Column("oldest_due_on", Date, nullable=False),
    Column("segment", Text),
    Column("stage", Text),
    Column("days_past_due", Integer),
    Column("balance_minor", BigInteger),
    Column("ruleset_version", Text),
    Column("segmented_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "debtor_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("payment_id", UUID(as_uuid=True), nullable=False),
    Column("debtor_id", Text, nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "payment_id"),
)

segment_history = Table(
    "segment_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("segment", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("days_past_due", Integer, nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("ruleset_version", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
    Index("segment_history_debtor", "tenant_id", "debtor_id", "id"),
)

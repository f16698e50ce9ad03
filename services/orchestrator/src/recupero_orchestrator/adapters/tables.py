"""Orchestrator's own schema: cases, payments seen, and the durable action schedule."""

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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("orchestrator")
metadata = schema.metadata

cases = Table(
    "cases",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("contact", JSONB, nullable=False),
    Column("segment", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("days_past_due", Integer, nullable=False),
    Column("oldest_due_on", Date, nullable=False),
    Column("snapshot_balance_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("snapshot_as_of", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("closed_reason", Text),
    Column("opened_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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

scheduled_actions = Table(
    "scheduled_actions",
    metadata,
    Column("action_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("planned_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("status_reason", Text),
    Column("fired_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Index("scheduled_actions_due", "due_at", postgresql_where=text("status = 'pending'")),
    Index("scheduled_actions_debtor", "tenant_id", "debtor_id"),
)

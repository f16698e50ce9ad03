"""Payments' own schema: every payment recorded, unique per tenant by external reference."""

from sqlalchemy import BigInteger, Column, DateTime, Index, Table, Text, func, text
from sqlalchemy.dialects.postgresql import UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("payments")
metadata = schema.metadata

payments = Table(
    "payments",
    metadata,
    Column("payment_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("external_reference", Text),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(
        "payments_external_reference",
        "tenant_id",
        "external_reference",
        unique=True,
        postgresql_where=text("external_reference IS NOT NULL"),
    ),
    Index("payments_debtor", "tenant_id", "debtor_id"),
)

"""Ingest's own schema: import jobs, per-row rejections, debtors and documents as received."""

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("ingest")
metadata = schema.metadata

imports = Table(
    "imports",
    metadata,
    Column("import_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False, index=True),
    Column("filename", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("rows_total", Integer, nullable=False, server_default="0"),
    Column("rows_accepted", Integer, nullable=False, server_default="0"),
    Column("rows_rejected", Integer, nullable=False, server_default="0"),
    Column("debtors_new", Integer, nullable=False, server_default="0"),
    Column("debtors_changed", Integer, nullable=False, server_default="0"),
    Column("debtors_unchanged", Integer, nullable=False, server_default="0"),
    Column("balance_by_currency", JSONB, nullable=False, server_default="{}"),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
)

rejections = Table(
    "rejections",
    metadata,
    Column("import_id", UUID(as_uuid=True), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("row_number", Integer, nullable=False),
    Column("field", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("reason", Text, nullable=False),
    PrimaryKeyConstraint("import_id", "row_number", "field"),
    ForeignKeyConstraint(["import_id"], ["ingest.imports.import_id"], ondelete="CASCADE"),
)

debtors = Table(
    "debtors",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("contact", JSONB, nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("oldest_due_on", Date, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("last_import_id", UUID(as_uuid=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "debtor_id"),
)

documents = Table(
    "documents",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("document_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("product", Text),
    Column("issued_on", Date),
    Column("due_on", Date, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    PrimaryKeyConstraint("tenant_id", "debtor_id", "document_id"),
    ForeignKeyConstraint(
        ["tenant_id", "debtor_id"],
        ["ingest.debtors.tenant_id", "ingest.debtors.debtor_id"],
        ondelete="CASCADE",
    ),
)

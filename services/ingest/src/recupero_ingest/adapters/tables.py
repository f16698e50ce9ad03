"""Ingest's own schema.

- `imports`: one row per import job (file, API batch or Kafka batch) with its progress and report.
- `import_chunks`: the uploaded file itself, in order, so any replica can (re)process the job.
- (a job's validated rows are COPYed into temporary tables and consolidated in SQL)
- `import_partitions`: the partitions of a job's debtors whose consolidation has committed, each
  with its share of the report: a rerun of the job skips them and adds their counts.
- `rejections`: every row that failed validation, with field, value and reason.
- `debtors`, `documents`: the portfolio as the creditor last described it.
- `tenant_policies`: per-tenant settings of ingest (the interest policy).
"""

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
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
    Column("source", Text, nullable=False),  # file | api | kafka
    Column("filename", Text, nullable=False),
    Column("profile_name", Text, nullable=False),
    Column("profile_version", Integer, nullable=False),
    Column("mode", Text, nullable=False),  # incremental | full
    # received -> parsing -> consolidating -> completed | failed
    Column("status", Text, nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("bytes_total", BigInteger, nullable=False, server_default="0"),
    # SHA-256 of an uploaded file: the same file again, with nothing applied in between, is
    # answered from the import that applied it (`same_file_as`) without being parsed again.
    Column("file_sha256", Text),
    Column("same_file_as", UUID(as_uuid=True)),
    Column("bytes_processed", BigInteger, nullable=False, server_default="0"),
    Column("rows_total", Integer, nullable=False, server_default="0"),
    Column("rows_accepted", Integer, nullable=False, server_default="0"),
    Column("rows_rejected", Integer, nullable=False, server_default="0"),
    Column("debtors_new", Integer, nullable=False, server_default="0"),
    Column("debtors_changed", Integer, nullable=False, server_default="0"),
    Column("debtors_unchanged", Integer, nullable=False, server_default="0"),
    Column("debtors_settled", Integer, nullable=False, server_default="0"),
    Column("balance_by_currency", JSONB, nullable=False, server_default="{}"),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index(
        "imports_pending", "created_at", postgresql_where=text("status IN ('received', 'parsing')")
    ),
)

import_chunks = Table(
    "import_chunks",
    metadata,
    Column("import_id", UUID(as_uuid=True), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("import_id", "seq"),
    ForeignKeyConstraint(["import_id"], ["ingest.imports.import_id"], ondelete="CASCADE"),
)

import_partitions = Table(
    "import_partitions",
    metadata,
    Column("import_id", UUID(as_uuid=True), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("tenant_id", Text, nullable=False),
    # How many partitions the job's debtors were split into (a rerun keeps the same split).
    Column("partitions", Integer, nullable=False),
    Column("debtors_new", Integer, nullable=False),
    Column("debtors_changed", Integer, nullable=False),
    Column("debtors_unchanged", Integer, nullable=False),
    Column("debtors_settled", Integer, nullable=False),
    Column("rows_rejected", Integer, nullable=False),
    Column("balance_by_currency", JSONB, nullable=False),
    Column("committed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("import_id", "partition"),
    ForeignKeyConstraint(["import_id"], ["ingest.imports.import_id"], ondelete="CASCADE"),
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
    Column("attributes", JSONB, nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("oldest_due_on", Date, nullable=False),
    Column("fingerprint", Text, nullable=False),
    # Digest of the debtor's rows in the import that set this state, when the state is exactly
    # those rows (no document kept from earlier files, no interest accrued): the same rows again
    # cannot change anything, and a re-import skips such debtors without building their state.
    Column("source_digest", Text),
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
    Column("principal_minor", BigInteger, nullable=False),
    Column("interest_minor", BigInteger, nullable=False),
    Column("fees_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    # open, or settled: a full snapshot no longer listed it (the creditor settled it)
    Column("status", Text, nullable=False, server_default="open"),
    Column("settled_at", DateTime(timezone=True)),
    Column("last_import_id", UUID(as_uuid=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "debtor_id", "document_id"),
)

tenant_policies = Table(
    "tenant_policies",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    # {"kind": "none"} or {"kind": "simple_daily", "daily_rate": "0.0005"}
    Column("interest_policy", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

profiles = Table(
    "profiles",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("source_text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "name", "version"),
)

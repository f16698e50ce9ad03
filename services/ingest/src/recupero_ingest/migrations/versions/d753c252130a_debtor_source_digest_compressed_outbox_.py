"""debtor source digest; file digest of uploads; compressed outbox payloads

Revision ID: d753c252130a
Revises: c9bc0000faa2
Create Date: 2026-11-23 00:03:15.990323
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d753c252130a"
down_revision: str | None = "c9bc0000faa2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("debtors", sa.Column("source_digest", sa.Text(), nullable=True), schema="ingest")
    op.add_column("imports", sa.Column("file_sha256", sa.Text(), nullable=True), schema="ingest")
    op.add_column(
        "imports", sa.Column("same_file_as", sa.UUID(as_uuid=True), nullable=True), schema="ingest"
    )
    # Payloads of debtors with many documents pass PostgreSQL's ~2 kB compression threshold:
    # those are compressed with lz4 (faster than the default pglz) down to small rows. A typical
    # event (~1.7 kB) stays under the threshold and is stored as is, whatever the target says.
    # Alembic does not model storage parameters, hence raw SQL.
    op.execute("ALTER TABLE ingest.outbox SET (toast_tuple_target = 128)")
    op.execute("ALTER TABLE ingest.outbox ALTER COLUMN value SET COMPRESSION lz4")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest.outbox ALTER COLUMN value SET COMPRESSION DEFAULT")
    op.execute("ALTER TABLE ingest.outbox RESET (toast_tuple_target)")
    op.drop_column("imports", "same_file_as", schema="ingest")
    op.drop_column("imports", "file_sha256", schema="ingest")
    op.drop_column("debtors", "source_digest", schema="ingest")

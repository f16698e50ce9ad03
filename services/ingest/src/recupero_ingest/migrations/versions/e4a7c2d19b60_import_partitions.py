"""import_partitions: each committed consolidation partition of an import, with its report

Revision ID: e4a7c2d19b60
Revises: 5b8e1f0c3a2d
Create Date: 2026-11-23 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e4a7c2d19b60"
down_revision: str | None = "5b8e1f0c3a2d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_partitions",
        sa.Column("import_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("partitions", sa.Integer(), nullable=False),
        sa.Column("debtors_new", sa.Integer(), nullable=False),
        sa.Column("debtors_changed", sa.Integer(), nullable=False),
        sa.Column("debtors_unchanged", sa.Integer(), nullable=False),
        sa.Column("debtors_settled", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("balance_by_currency", postgresql.JSONB(), nullable=False),
        sa.Column(
            "committed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["import_id"], ["ingest.imports.import_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("import_id", "partition"),
        schema="ingest",
    )


def downgrade() -> None:
    op.drop_table("import_partitions", schema="ingest")

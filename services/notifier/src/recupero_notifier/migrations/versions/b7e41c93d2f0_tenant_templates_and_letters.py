"""tenant templates (versioned) and printed letters

Revision ID: b7e41c93d2f0
Revises: 5c1e0a7d9b42
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b7e41c93d2f0"
down_revision: str | None = "5c1e0a7d9b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("locale", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("parts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant_id", "name", "locale", "version"),
        schema="notifier",
    )
    op.create_table(
        "letters",
        sa.Column("letter_id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("debtor_id", sa.Text(), nullable=False),
        sa.Column("action_id", sa.UUID(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("locale", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("tracking_number", sa.Text(), nullable=True),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending_print', 'printed', 'posted', 'delivered', 'returned')",
            name="letters_status",
        ),
        sa.PrimaryKeyConstraint("letter_id"),
        sa.UniqueConstraint("action_id"),
        schema="notifier",
    )
    op.create_index(
        "letters_for_print",
        "letters",
        ["tenant_id", "status", "created_at"],
        unique=False,
        schema="notifier",
    )


def downgrade() -> None:
    op.drop_index("letters_for_print", table_name="letters", schema="notifier")
    op.drop_table("letters", schema="notifier")
    op.drop_table("template_versions", schema="notifier")

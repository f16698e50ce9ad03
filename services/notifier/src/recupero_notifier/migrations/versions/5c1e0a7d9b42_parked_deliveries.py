"""parked deliveries: the action kept while its provider is down, and when to try again

Revision ID: 5c1e0a7d9b42
Revises: 07748c462857
Create Date: 2026-11-24 02:25:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5c1e0a7d9b42"
down_revision: str | None = "07748c462857"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "deliveries",
        sa.Column("parked_action", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="notifier",
    )
    op.add_column(
        "deliveries",
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        schema="notifier",
    )
    op.create_index(
        "deliveries_retry_at",
        "deliveries",
        ["retry_at"],
        unique=False,
        schema="notifier",
        postgresql_where=sa.text("retry_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("deliveries_retry_at", table_name="deliveries", schema="notifier")
    op.drop_column("deliveries", "retry_at", schema="notifier")
    op.drop_column("deliveries", "parked_action", schema="notifier")

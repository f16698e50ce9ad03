"""debtor zone and propensity score on cases, zone queues, channel costs

Revision ID: b7c1e4a9d2f0
Revises: f3f670443fb3
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b7c1e4a9d2f0"
down_revision: str | None = "f3f670443fb3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("zone", sa.Text(), nullable=True), schema="orchestrator")
    op.add_column(
        "cases", sa.Column("propensity_score", sa.Integer(), nullable=True), schema="orchestrator"
    )
    op.create_index(
        "agent_tasks_open_zone",
        "agent_tasks",
        ["tenant_id", "zone", "priority"],
        unique=False,
        schema="orchestrator",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "channel_costs",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("per_contact", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant_id"),
        schema="orchestrator",
    )


def downgrade() -> None:
    op.drop_table("channel_costs", schema="orchestrator")
    op.drop_index(
        "agent_tasks_open_zone",
        table_name="agent_tasks",
        schema="orchestrator",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_column("cases", "propensity_score", schema="orchestrator")
    op.drop_column("cases", "zone", schema="orchestrator")

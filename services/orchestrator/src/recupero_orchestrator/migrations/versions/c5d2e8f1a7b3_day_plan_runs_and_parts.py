"""day plan runs per tenant and day, split into key ranges with a cursor each

Revision ID: c5d2e8f1a7b3
Revises: 926f078bafc2
Create Date: 2026-11-23 04:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c5d2e8f1a7b3"
down_revision: str | None = "926f078bafc2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "day_plan_runs",
        sa.Column("run_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("plan_date", sa.Date(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
        schema="orchestrator",
    )
    op.create_index(
        "day_plan_runs_daily",
        "day_plan_runs",
        ["tenant_id", "plan_date"],
        unique=True,
        schema="orchestrator",
        postgresql_where=sa.text("trigger = 'daily'"),
    )
    op.create_index(
        "day_plan_runs_tenant",
        "day_plan_runs",
        ["tenant_id", "started_at"],
        unique=False,
        schema="orchestrator",
    )
    op.create_table(
        "day_plan_parts",
        sa.Column("run_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("after_debtor", sa.Text(), nullable=False),
        sa.Column("through_debtor", sa.Text(), nullable=True),
        sa.Column("resume_after", sa.Text(), nullable=False),
        sa.Column("debtors", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("actions", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("skipped", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("moved", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("replanned", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "part"),
        schema="orchestrator",
    )


def downgrade() -> None:
    op.drop_table("day_plan_parts", schema="orchestrator")
    op.drop_index("day_plan_runs_tenant", table_name="day_plan_runs", schema="orchestrator")
    op.drop_index("day_plan_runs_daily", table_name="day_plan_runs", schema="orchestrator")
    op.drop_table("day_plan_runs", schema="orchestrator")

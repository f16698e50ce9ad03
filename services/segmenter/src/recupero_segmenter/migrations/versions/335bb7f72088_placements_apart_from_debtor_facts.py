"""placements apart from debtor facts

Revision ID: 335bb7f72088
Revises: e2b898e5882e
Create Date: 2026-11-23 00:14:46.423666
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "335bb7f72088"
down_revision: str | None = "e2b898e5882e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLACEMENT_COLUMNS = (
    "segment, stage, strategy, days_past_due, ruleset_version, segmented_at"  # fixed names
)


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("debtor_id", sa.Text(), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=True),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("ruleset_version", sa.Text(), nullable=False),
        sa.Column("segmented_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "debtor_id"),
        schema="segmenter",
        postgresql_with={"fillfactor": 50},
    )
    # Every placed debtor keeps its placement; the columns on the facts row go.
    op.execute(
        f"INSERT INTO segmenter.placements (tenant_id, debtor_id, {PLACEMENT_COLUMNS}) "
        "SELECT tenant_id, debtor_id, segment, stage, strategy, coalesce(days_past_due, 0), "
        "coalesce(ruleset_version, 'default-1'), coalesce(segmented_at, now()) "
        "FROM segmenter.debtors WHERE segment IS NOT NULL AND stage IS NOT NULL"
    )
    op.drop_column("debtors", "segmented_at", schema="segmenter")
    op.drop_column("debtors", "stage", schema="segmenter")
    op.drop_column("debtors", "ruleset_version", schema="segmenter")
    op.drop_column("debtors", "days_past_due", schema="segmenter")
    op.drop_column("debtors", "segment", schema="segmenter")
    op.drop_column("debtors", "strategy", schema="segmenter")


def downgrade() -> None:
    op.add_column("debtors", sa.Column("strategy", sa.TEXT(), nullable=True), schema="segmenter")
    op.add_column("debtors", sa.Column("segment", sa.TEXT(), nullable=True), schema="segmenter")
    op.add_column(
        "debtors", sa.Column("days_past_due", sa.INTEGER(), nullable=True), schema="segmenter"
    )
    op.add_column(
        "debtors", sa.Column("ruleset_version", sa.TEXT(), nullable=True), schema="segmenter"
    )
    op.add_column("debtors", sa.Column("stage", sa.TEXT(), nullable=True), schema="segmenter")
    op.add_column(
        "debtors",
        sa.Column("segmented_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        schema="segmenter",
    )
    op.execute(
        f"UPDATE segmenter.debtors d SET ({PLACEMENT_COLUMNS}) = "
        f"(p.segment, p.stage, p.strategy, p.days_past_due, p.ruleset_version, p.segmented_at) "
        "FROM segmenter.placements p "
        "WHERE p.tenant_id = d.tenant_id AND p.debtor_id = d.debtor_id"
    )
    op.drop_table("placements", schema="segmenter")

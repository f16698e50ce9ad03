"""channel authorisations: how each was given (evidence, source), and a log of grants and revocations

Revision ID: 926f078bafc2
Revises: a192dac582ce
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "926f078bafc2"
down_revision: str | None = "a192dac582ce"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "authorised_channels",
        sa.Column("evidence", sa.Text(), server_default="", nullable=False),
        schema="orchestrator",
    )
    op.add_column(
        "authorised_channels",
        sa.Column("source", sa.Text(), server_default="api", nullable=False),
        schema="orchestrator",
    )
    op.add_column(
        "authorised_channels",
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        schema="orchestrator",
    )
    op.create_table(
        "channel_authorisation_log",
        sa.Column("entry_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("debtor_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id"),
        schema="orchestrator",
    )
    op.create_index(
        "channel_authorisation_log_debtor",
        "channel_authorisation_log",
        ["tenant_id", "debtor_id", "channel", "entry_id"],
        unique=False,
        schema="orchestrator",
    )


def downgrade() -> None:
    op.drop_index(
        "channel_authorisation_log_debtor",
        table_name="channel_authorisation_log",
        schema="orchestrator",
    )
    op.drop_table("channel_authorisation_log", schema="orchestrator")
    op.drop_column("authorised_channels", "recorded_at", schema="orchestrator")
    op.drop_column("authorised_channels", "source", schema="orchestrator")
    op.drop_column("authorised_channels", "evidence", schema="orchestrator")

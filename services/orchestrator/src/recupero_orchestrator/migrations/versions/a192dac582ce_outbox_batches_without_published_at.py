"""outbox: rows are deleted once published (published_at goes); a row may hold a batch of events

Revision ID: a192dac582ce
Revises: b7c1e4a9d2f0
Create Date: 2026-11-23 02:45:00.000000
"""

from collections.abc import Sequence

from recupero_runtime.migrations import alter_delivery_tables_v2, revert_delivery_tables_v2

revision: str = "a192dac582ce"
down_revision: str | None = "b7c1e4a9d2f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    alter_delivery_tables_v2("orchestrator")


def downgrade() -> None:
    revert_delivery_tables_v2("orchestrator")

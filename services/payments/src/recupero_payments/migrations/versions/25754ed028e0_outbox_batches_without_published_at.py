"""outbox: rows are deleted once published (published_at goes); a row may hold a batch of events

Revision ID: 25754ed028e0
Revises: 062e496a8264
Create Date: 2026-11-23 02:45:00.000000
"""

from collections.abc import Sequence

from recupero_runtime.migrations import alter_delivery_tables_v2, revert_delivery_tables_v2

revision: str = "25754ed028e0"
down_revision: str | None = "062e496a8264"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    alter_delivery_tables_v2("payments")


def downgrade() -> None:
    revert_delivery_tables_v2("payments")

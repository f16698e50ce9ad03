"""outbox: rows are deleted once published (published_at goes); a row may hold a batch of events

Revision ID: f9b63f3b487e
Revises: 0ed01c85157d
Create Date: 2026-11-23 02:45:00.000000
"""

from collections.abc import Sequence

from recupero_runtime.migrations import alter_delivery_tables_v2, revert_delivery_tables_v2

revision: str = "f9b63f3b487e"
down_revision: str | None = "0ed01c85157d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    alter_delivery_tables_v2("portal_api")


def downgrade() -> None:
    revert_delivery_tables_v2("portal_api")

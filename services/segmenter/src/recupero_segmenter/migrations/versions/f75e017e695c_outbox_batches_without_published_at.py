"""outbox: rows are deleted once published (published_at goes); a row may hold a batch of events

Revision ID: f75e017e695c
Revises: 335bb7f72088
Create Date: 2026-11-23 02:45:00.000000
"""

from collections.abc import Sequence

from recupero_runtime.migrations import alter_delivery_tables_v2, revert_delivery_tables_v2

revision: str = "f75e017e695c"
down_revision: str | None = "335bb7f72088"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    alter_delivery_tables_v2("segmenter")


def downgrade() -> None:
    revert_delivery_tables_v2("segmenter")

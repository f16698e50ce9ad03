"""outbox: rows are deleted once published (published_at goes); a row may hold a batch of events

Revision ID: af299c4bab66
Revises: d753c252130a
Create Date: 2026-11-23 02:45:00.000000
"""

from collections.abc import Sequence

from recupero_runtime.migrations import alter_delivery_tables_v2, revert_delivery_tables_v2

revision: str = "af299c4bab66"
down_revision: str | None = "d753c252130a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    alter_delivery_tables_v2("ingest")


def downgrade() -> None:
    # Ingest's outbox was lz4 before (d753c252130a).
    revert_delivery_tables_v2("ingest", compression_before="lz4")

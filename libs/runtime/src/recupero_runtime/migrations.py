"""The body of every service's Alembic `env.py`: migrations run on a connection we hand in."""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import MetaData


def run_migrations(target_metadata: MetaData) -> None:
    config = context.config
    schema = config.attributes["schema"]
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=lambda name, type_, parent: type_ != "schema" or name == schema,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# The delivery tables every service has (outbox, processed_events), as each service's first
# migration creates them. Versioned like a migration: a later change adds a `_v2` step that
# alters them, and this function stays as it is.
def create_delivery_tables_v1(schema: str) -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("debtor_id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text(), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
        schema=schema,
    )
    _create_unpublished_index(schema)
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        schema=schema,
    )


def drop_delivery_tables_v1(schema: str) -> None:
    op.drop_table("processed_events", schema=schema)
    op.drop_index("outbox_unpublished", table_name="outbox", schema=schema)
    op.drop_table("outbox", schema=schema)


# v2: the relay deletes what it published, so `published_at` and its partial index go (the primary
# key is the relay's index); a row may carry a batch of events (`batch_events`, NULL on a row that
# is one event). A batch row's value (~700 kB) is compressed with lz4, several times faster than
# the default pglz.
def alter_delivery_tables_v2(schema: str) -> None:
    op.execute(f"ALTER TABLE {schema}.outbox ALTER COLUMN value SET COMPRESSION lz4")
    op.drop_index("outbox_unpublished", table_name="outbox", schema=schema)
    op.drop_column("outbox", "published_at", schema=schema)
    op.add_column(
        "outbox",
        sa.Column("batch_events", sa.Integer(), nullable=True),
        schema=schema,
    )


def revert_delivery_tables_v2(schema: str, compression_before: str = "DEFAULT") -> None:
    op.execute(
        f"ALTER TABLE {schema}.outbox ALTER COLUMN value SET COMPRESSION {compression_before}"
    )
    op.drop_column("outbox", "batch_events", schema=schema)
    op.add_column(
        "outbox",
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    _create_unpublished_index(schema)


def _create_unpublished_index(schema: str) -> None:
    """v1's index of the rows still to publish (v2 drops it)."""
    op.create_index(
        "outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )

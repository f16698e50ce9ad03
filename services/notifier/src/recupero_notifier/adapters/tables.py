"""Notifier's own schema: one delivery per action, the record that makes sending exactly-once-visible."""

from sqlalchemy import CheckConstraint, Column, DateTime, Integer, Table, Text
from sqlalchemy.dialects.postgresql import UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("notifier")
metadata = schema.metadata

DELIVERY_STATUSES = ("sending", "sent", "unsupported_channel")

deliveries = Table(
    "deliveries",
    metadata,
    Column("action_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False, index=True),
    Column("debtor_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("template", Text, nullable=False),
    # `sending` is committed before the provider call; `sent` once the provider accepted.
    Column("status", Text, nullable=False),
    # Provider's id of the message; for email the deterministic Message-ID.
    Column("message_id", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("first_attempt_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{status}'" for status in DELIVERY_STATUSES)),
        name="deliveries_status",
    ),
)

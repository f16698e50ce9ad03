"""Segmenter's own schema: each debtor's facts, each debtor's placement, payments, promises,
history, the tenants' rule set versions and the aging clock."""

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("segmenter")
metadata = schema.metadata


def _counter(name: str) -> Column[int]:
    return Column(name, Integer, nullable=False, server_default="0")


# One row per debtor: the facts rules test are columns, so a whole portfolio is segmented by one
# set-based statement (see adapters.rule_sql).
debtors = Table(
    "debtors",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("contact", JSONB, nullable=False),
    Column("snapshot_balance_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("snapshot_as_of", DateTime(timezone=True), nullable=False),
    Column("oldest_due_on", Date, nullable=False),
    # Outstanding now: the snapshot less later payments; kept current by every event.
    Column("balance_minor", BigInteger),
    Column("time_zone", Text, nullable=False),
    Column("country", Text),
    Column("product", Text),
    Column("zone", Text),
    Column("customer_type", Text),
    Column("risk_score", Integer),
    Column("preferred_channel", Text),
    _counter("documents_count"),
    Column("custom", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _counter("actions_count"),
    Column("last_contact_channel", Text),
    Column("last_contact_on", Date),
    _counter("promises_made"),
    _counter("promises_kept"),
    _counter("promises_broken"),
    Column("last_promise_on", Date),
    _counter("payments_count"),
    Column("last_payment_on", Date),
    PrimaryKeyConstraint("tenant_id", "debtor_id"),
    Index("debtors_time_zone", "tenant_id", "time_zone"),
    # Room on each page so the updates of facts by events (no indexed column changes) are HOT.
    postgresql_with={"fillfactor": 70},
)

# Where each debtor is now. Kept apart from the wide facts row (contact and custom JSON): a rule
# set activation re-places nearly every debtor, and rewriting a ~100-byte row costs a fraction of
# rewriting the whole debtor.
placements = Table(
    "placements",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("segment", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("strategy", Text),
    Column("days_past_due", Integer, nullable=False),
    Column("ruleset_version", Text, nullable=False),
    Column("segmented_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "debtor_id"),
    # Half of each page free: re-placing every debtor of a page in one transaction still fits
    # on the page, so each update is HOT (no index entry) until vacuum reclaims the old rows.
    postgresql_with={"fillfactor": 50},
)

payments = Table(
    "payments",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("payment_id", UUID(as_uuid=True), nullable=False),
    Column("debtor_id", Text, nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "payment_id"),
)

# Promises as registered; `outcome` (kept / broken) is filled when the orchestrator reports it.
promises = Table(
    "promises",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("promise_id", UUID(as_uuid=True), nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("promised_on", Date, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("outcome", Text),
    Column("outcome_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "promise_id"),
    Index("promises_debtor", "tenant_id", "debtor_id"),
)

segment_history = Table(
    "segment_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("segment", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("days_past_due", Integer, nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("ruleset_version", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
    Column("strategy", Text),
    Column("previous_segment", Text),
    Column("previous_stage", Text),
    # What made the segmenter look: an event's topic, `activation` or `aging`.
    Column("trigger", Text, nullable=False, server_default="event"),
    Index("segment_history_debtor", "tenant_id", "debtor_id", "id"),
)

# Versions of each tenant's rule set: drafts, the one active version, retired ones. The active
# version's re-segmentation progress lives on its row, so an interrupted activation resumes.
rulesets = Table(
    "rulesets",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("source", Text, nullable=False),
    Column("description", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    Column("retired_at", DateTime(timezone=True)),
    Column("resegment_cursor", Text),
    Column("resegment_evaluated", BigInteger, nullable=False, server_default="0"),
    Column("resegment_changed", BigInteger, nullable=False, server_default="0"),
    Column("resegment_finished_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "version"),
    Index(
        "rulesets_one_active",
        "tenant_id",
        unique=True,
        postgresql_where=text("status = 'active'"),
    ),
)

# The local date up to which each tenant's debtors in each time zone have been aged.
aging_clock = Table(
    "aging_clock",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("time_zone", Text, nullable=False),
    Column("swept_on", Date, nullable=False),
    PrimaryKeyConstraint("tenant_id", "time_zone"),
)

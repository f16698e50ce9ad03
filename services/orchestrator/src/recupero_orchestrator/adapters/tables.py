"""Orchestrator's own schema: cases, payments seen, the durable action schedule, strategies and
their variants, contact policy data and decisions, promises and agent tasks. Every row carries its
tenant."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("orchestrator")
metadata = schema.metadata

cases = Table(
    "cases",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("contact", JSONB, nullable=False),
    Column("segment", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("days_past_due", Integer, nullable=False),
    Column("oldest_due_on", Date, nullable=False),
    Column("snapshot_balance_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("snapshot_as_of", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("closed_reason", Text),
    # The tenant strategy the debtor follows in its current segment; null on the default plan.
    Column("strategy_id", Text),
    Column("strategy_version", Integer),
    Column("segment_entered_at", DateTime(timezone=True)),
    Column("plan_status", Text),
    Column("plan_reason", Text),
    Column("replied_at", DateTime(timezone=True)),
    # Where agents' tasks for the debtor are routed and how they rank (see domain/agent_work.py);
    # the last values `debtor-segmented` carried, kept when an event leaves them out.
    Column("zone", Text),
    Column("propensity_score", Integer),
    Column("opened_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "debtor_id"),
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

scheduled_actions = Table(
    "scheduled_actions",
    metadata,
    Column("action_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("planned_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("status_reason", Text),
    Column("fired_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    # Strategy actions: the planner's stable key (null for the default plan), what it is, and what
    # became of it. `status` is pending, fired, cancelled, dropped or skipped; `delivery` what the
    # provider reported after firing (sent, delivered, read, failed).
    Column("action_key", Text),
    Column("kind", Text, nullable=False, server_default=text("'contact'")),
    Column("step_id", Text),
    Column("round", Integer, nullable=False, server_default=text("0")),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("expires_at", DateTime(timezone=True)),
    Column("happened_at", DateTime(timezone=True)),
    Column("delivery", Text),
    Index(
        "scheduled_actions_key",
        "tenant_id",
        "debtor_id",
        "action_key",
        unique=True,
        postgresql_where=text("action_key IS NOT NULL"),
    ),
    Index("scheduled_actions_due", "due_at", postgresql_where=text("status = 'pending'")),
    Index("scheduled_actions_debtor", "tenant_id", "debtor_id"),
)

# --- Strategies, schedule, contact policy, promises and agent work (issue 5) ---------------------

# One row per version of a tenant's strategy document; at most one version of a strategy is active.
strategy_versions = Table(
    "strategy_versions",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("strategy_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("status", Text, nullable=False),  # draft, active, retired
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("activated_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "strategy_id", "version"),
    Index(
        "strategy_versions_one_active",
        "tenant_id",
        "strategy_id",
        unique=True,
        postgresql_where=text("status = 'active'"),
    ),
)

# Champion/challenger: the strategies a segment runs and the share of debtors each gets.
segment_variants = Table(
    "segment_variants",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("segment", Text, nullable=False),
    Column("strategy_id", Text, nullable=False),
    Column("percent", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "segment", "strategy_id"),
)

# A debtor keeps the variant it got on first entering a segment, even after the split changes.
variant_assignments = Table(
    "variant_assignments",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("segment", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("strategy_id", Text, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "segment", "debtor_id"),
    Index("variant_assignments_strategy", "tenant_id", "segment", "strategy_id"),
)

# Every contact attempt that reached (or tried to reach) the debtor: what frequency caps count.
contact_history = Table(
    "contact_history",
    metadata,
    Column("contact_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("contacted_at", DateTime(timezone=True), nullable=False),
    Column("conversation", Boolean, nullable=False),
    Column("action_id", UUID(as_uuid=True)),
    Index("contact_history_debtor", "tenant_id", "debtor_id", "contacted_at"),
)

opt_outs = Table(
    "opt_outs",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("opted_out_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "debtor_id", "channel"),
)

# Channels a debtor authorised now, where the country requires authorisation (Colombia): a
# revoked channel's row is deleted (the log keeps it), so every reader sees only live ones.
authorised_channels = Table(
    "authorised_channels",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    # When the debtor gave it, and the proof (a signed form, a recorded call, an import).
    Column("authorised_at", DateTime(timezone=True), nullable=False),
    Column("evidence", Text, nullable=False, server_default=""),
    Column("source", Text, nullable=False, server_default="api"),  # api, import
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "debtor_id", "channel"),
)

# Every grant and revocation of a channel, never updated: what a supervisor shows a regulator.
channel_authorisation_log = Table(
    "channel_authorisation_log",
    metadata,
    Column("entry_id", BigInteger, Identity(), primary_key=True),  # the order changes happened in
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("change", Text, nullable=False),  # authorised, revoked
    Column("source", Text, nullable=False),  # api, import
    Column("evidence", Text, nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("channel_authorisation_log_debtor", "tenant_id", "debtor_id", "channel", "entry_id"),
)

holds = Table(
    "holds",
    metadata,
    Column("hold_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # do_not_contact, dispute, hardship
    Column("since", DateTime(timezone=True), nullable=False),
    Column("until", DateTime(timezone=True)),
    Column("reason", Text, nullable=False),
    Index("holds_debtor", "tenant_id", "debtor_id"),
)

# A tenant's tightening of one country's contact rules (validated: never looser).
policy_overrides = Table(
    "policy_overrides",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "country"),
)

# What the contact policy (or the strategy) decided about each action, for supervisors.
contact_decisions = Table(
    "contact_decisions",
    metadata,
    Column("decision_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("action_id", UUID(as_uuid=True)),
    Column("action_key", Text),
    Column("channel", Text),
    Column("verdict", Text, nullable=False),  # allowed, moved, dropped, skipped, cancelled
    Column("rule_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("trail", JSONB, nullable=False),
    Column("policy_id", Text),
    Column("requested_at", DateTime(timezone=True)),
    Column("moved_to", DateTime(timezone=True)),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Index("contact_decisions_debtor", "tenant_id", "debtor_id", "decided_at"),
)

promises = Table(
    "promises",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("promise_id", UUID(as_uuid=True), nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("promised_on", Date, nullable=False),
    Column("source", Text, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),  # pending, kept, partially_kept, broken, replaced
    Column("paid_minor", BigInteger, nullable=False, server_default=text("0")),
    Column("resolved_at", DateTime(timezone=True)),
    Column("strategy_id", Text),
    PrimaryKeyConstraint("tenant_id", "promise_id"),
    Index("promises_debtor", "tenant_id", "debtor_id"),
    Index("promises_due", "deadline", postgresql_where=text("status = 'pending'")),
)

agent_tasks = Table(
    "agent_tasks",
    metadata,
    Column("task_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("action_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("queue", Text, nullable=False),  # the debtor's collection stage
    Column("skill", Text, nullable=False),  # agent_call, field_visit or legal_referral
    Column("zone", Text),
    Column("priority", BigInteger, nullable=False),
    Column("template", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", Text, nullable=False),  # open, assigned, done, cancelled
    Column("agent_id", Text),
    Column("assigned_at", DateTime(timezone=True)),
    Column("outcome", Text),
    Column("note", Text),
    Column("completed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("agent_tasks_open", "tenant_id", "priority", postgresql_where=text("status = 'open'")),
    Index(
        "agent_tasks_open_zone",
        "tenant_id",
        "zone",
        "priority",
        postgresql_where=text("status = 'open'"),
    ),
    Index("agent_tasks_agent", "tenant_id", "agent_id"),
)

# A tenant's price of one contact attempt per channel (see domain/costs.py); defaults apply
# until the tenant sets its own.
channel_costs = Table(
    "channel_costs",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("currency", Text, nullable=False),
    Column("per_contact", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Planning the day (`day_plan.plan_day`): one run per tenant and day (and one per request), its
# debtors split into disjoint key ranges, each with the cursor of the last debtor planned: a restart
# does not plan a finished day again and an interrupted run resumes after its last committed chunk.
day_plan_runs = Table(
    "day_plan_runs",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("plan_date", Date, nullable=False),  # the UTC day planned
    Column("trigger", Text, nullable=False),  # daily, request
    Column("planned_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Index(
        "day_plan_runs_daily",
        "tenant_id",
        "plan_date",
        unique=True,
        postgresql_where=text("trigger = 'daily'"),
    ),
    Index("day_plan_runs_tenant", "tenant_id", "started_at"),
)

day_plan_parts = Table(
    "day_plan_parts",
    metadata,
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("part", Integer, nullable=False),
    Column("tenant_id", Text, nullable=False),
    # The range of debtor ids: after `after_debtor`, up to and including `through_debtor` (null:
    # to the last); `resume_after` is the last debtor of the last committed chunk.
    Column("after_debtor", Text, nullable=False),
    Column("through_debtor", Text),
    Column("resume_after", Text, nullable=False),
    Column("debtors", BigInteger, nullable=False, server_default=text("0")),
    Column("actions", BigInteger, nullable=False, server_default=text("0")),
    Column("skipped", BigInteger, nullable=False, server_default=text("0")),
    Column("moved", BigInteger, nullable=False, server_default=text("0")),
    Column("replanned", BigInteger, nullable=False, server_default=text("0")),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("run_id", "part"),
)

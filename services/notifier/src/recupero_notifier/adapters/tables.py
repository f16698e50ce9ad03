"""Notifier's own schema: one delivery per action (the record that makes sending
exactly-once-visible), the provider callbacks already applied, when debtors last wrote, and what
the WhatsApp bot needs: its copy of each debtor's debt and the state of each conversation."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from recupero_runtime.db import ServiceSchema

schema = ServiceSchema.create("notifier")
metadata = schema.metadata

DELIVERY_STATUSES = ("sending", "sent", "retrying", "failed", "unsupported_channel")

deliveries = Table(
    "deliveries",
    metadata,
    Column("action_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False, index=True),
    Column("debtor_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("template", Text, nullable=False),
    # `sending` is committed before the provider call: the outcome is unknown until the
    # provider answers or its callback arrives. `retrying`: the provider answered and did not
    # take it. `sent`: accepted. `failed`: refused for good (`failure` says why).
    Column("status", Text, nullable=False),
    # Provider's id of the message: SMTP Message-ID, WhatsApp wamid, Twilio SID.
    Column("message_id", Text),
    Column("provider", Text),
    # Phone number or email address the action went to; inbound replies are matched on it.
    Column("recipient", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("first_attempt_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    Column("failure", Text),
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{status}'" for status in DELIVERY_STATUSES)),
        name="deliveries_status",
    ),
    Index("deliveries_recipient", "channel", "recipient"),
)

# A provider callback applied once: its replay (same message, same status) changes nothing.
received_callbacks = Table(
    "received_callbacks",
    metadata,
    Column("provider", Text, nullable=False),
    Column("callback_key", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("provider", "callback_key"),
)

# When a number last wrote to us: WhatsApp allows free text for 24 hours after that.
inbound_contacts = Table(
    "inbound_contacts",
    metadata,
    Column("channel", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("last_inbound_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("channel", "address"),
)

# The bot's copy of a debtor's debt, from `debt-imported`: the notifier answers "see my debt" and
# validates promises from its own data, never by asking another service.
debtor_facts = Table(
    "debtor_facts",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    # E.164; an inbound WhatsApp message is matched to its debtor on it.
    Column("phone", Text),
    Column("time_zone", Text, nullable=False),
    Column("currency", Text, nullable=False),
    # The creditor's balance at `as_of`; payments received after it are subtracted.
    Column("snapshot_balance_minor", BigInteger, nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
    # [{"document_id", "due_on", "amount_minor"}] as of the last import.
    Column("documents", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "debtor_id"),
    Index("debtor_facts_phone", "phone"),
)

# Payments from `payment-received`, once each: the balance the bot shows is the snapshot minus
# those received after it.
debtor_payments = Table(
    "debtor_payments",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("payment_id", UUID(as_uuid=True), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "debtor_id", "payment_id"),
)

# Where each bot conversation is (`domain.chatbot.ChatState` as JSON): a restart continues it.
conversations = Table(
    "conversations",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("state", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "debtor_id", "channel"),
)

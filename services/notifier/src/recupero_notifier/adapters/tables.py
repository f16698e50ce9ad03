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
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
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
    # A delivery whose provider stayed unavailable through the in-process retries is parked:
    # the action-due payload is kept here and the retry worker sends it again at `retry_at`
    # (backoff, never before the provider's Retry-After). Both are cleared once it settles.
    Column("parked_action", JSONB),
    Column("retry_at", DateTime(timezone=True)),
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{status}'" for status in DELIVERY_STATUSES)),
        name="deliveries_status",
    ),
    Index("deliveries_recipient", "channel", "recipient"),
    Index("deliveries_retry_at", "retry_at", postgresql_where=text("retry_at IS NOT NULL")),
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

# A tenant's own templates: every upload that passed validation is a new version; the highest
# version of (tenant, name, locale) is the one in use. `locale` is a locale (`es-AR`) or a
# language (`es`). A refused upload stores nothing, so the version in use never changes by it.
template_versions = Table(
    "template_versions",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("locale", Text, nullable=False),
    Column("version", Integer, nullable=False),
    # {"subject.txt": "...", "body.html": "...", ...}
    Column("parts", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "name", "locale", "version"),
)

LETTER_STATUSES = ("pending_print", "printed", "posted", "delivered", "returned")

# Printed letters (carta documento): one per action, the PDF kept for the print shop.
letters = Table(
    "letters",
    metadata,
    Column("letter_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("debtor_id", Text, nullable=False),
    # Unique: a redelivered action finds its letter instead of printing a second one.
    Column("action_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("template", Text, nullable=False),
    Column("locale", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("tracking_number", Text),
    Column("pdf", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status_changed_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{status}'" for status in LETTER_STATUSES)),
        name="letters_status",
    ),
    Index("letters_for_print", "tenant_id", "status", "created_at"),
)

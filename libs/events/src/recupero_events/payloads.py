"""Payload models of the published events.

Producers build these models (strict types, validated on construction); consumers validate incoming
JSON against them and ignore fields they do not know, so adding an optional field keeps the version.
Every payload carries its tenant and debtor: the Kafka key is derived from them.
"""

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from recupero_events.topics import Topic


def _utc(value: datetime) -> datetime:
    # Aware datetimes in any offset are accepted; the contract publishes them in UTC.
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]

TenantId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Tenant (creditor) that owns this data; lowercase slug.",
        examples=["demo-bank"],
    ),
]
DebtorId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="The creditor's own identifier of the debtor (customer number, tax id, ...).",
        examples=["C-000123"],
    ),
]


class Money(BaseModel):
    """An amount of money: integer minor units plus ISO-4217 currency. Never a float."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    amount_minor: int = Field(
        description="Amount in the currency's minor units (centavos, cents); may be negative "
        "only where the field says so (e.g. a credit note).",
        examples=[1523050],
    )
    currency: str = Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO-4217 alphabetic currency code.",
        examples=["MXN"],
    )


class CollectionStage(StrEnum):
    """Collection stage (etapa de cobranza) a debtor is in."""

    PREVENTIVE = "preventive"
    ADMINISTRATIVE = "administrative"
    EXTRAJUDICIAL = "extrajudicial"
    JUDICIAL = "judicial"
    SETTLED = "settled"


class Channel(StrEnum):
    """Contact channel of a collection action."""

    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    IVR = "ivr"
    LETTER = "letter"
    AGENT_CALL = "agent_call"


class DocumentKind(StrEnum):
    """Kind of debt document as received from the creditor."""

    INVOICE = "invoice"
    INSTALLMENT = "installment"
    CREDIT_NOTE = "credit_note"
    DEBIT_NOTE = "debit_note"


class PostalAddress(BaseModel):
    """Where a printed letter (carta documento) reaches the debtor, as the creditor gave it.

    Lenient on purpose: street lines, region and postal code are the creditor's text, as each
    country writes them; only the country is a checked code."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    street_lines: tuple[str, ...] = Field(
        min_length=1,
        max_length=3,
        description="Street, number, floor and flat, neighbourhood (colonia, barrio), in the "
        "order printed on the envelope.",
        examples=[["Av. Corrientes 1234, piso 5 B", "San Nicolás"]],
    )
    city: str = Field(
        min_length=1, description="City or locality.", examples=["Ciudad Autónoma de Buenos Aires"]
    )
    region: str | None = Field(
        default=None,
        description="State, province or department (estado, provincia, departamento), if given.",
        examples=["CABA"],
    )
    postal_code: str | None = Field(
        default=None, description="Postal code as the creditor wrote it.", examples=["C1043AAZ"]
    )
    country: str = Field(
        pattern=r"^[A-Z]{2}$", description="ISO-3166 alpha-2 country.", examples=["AR"]
    )


class ContactDetails(BaseModel):
    """How to reach a debtor, as the creditor gave it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, description="Debtor's full name.", examples=["Ana Pérez"])
    email: EmailStr | None = Field(
        default=None, description="Email address, if known.", examples=["ana@example.com"]
    )
    phone: str | None = Field(
        default=None,
        pattern=r"^\+[1-9]\d{6,14}$",
        description="Phone number in E.164 form, if known.",
        examples=["+5215512345678"],
    )
    country: str = Field(
        pattern=r"^[A-Z]{2}$", description="ISO-3166 alpha-2 country.", examples=["MX"]
    )
    time_zone: str = Field(
        min_length=1,
        description="IANA time zone of the debtor; days past due and contact hours use it.",
        examples=["America/Mexico_City"],
    )
    locale: str = Field(
        default="es-MX",
        description="BCP-47 locale for messages to this debtor.",
        examples=["es-MX"],
    )
    postal_address: PostalAddress | None = Field(
        default=None,
        description="Postal address for letters, if the creditor gave one; a letter to a debtor "
        "without one is not sent (`no_postal_address`). Absent in events from before it existed.",
    )


class DebtDocument(BaseModel):
    """One debt document (invoice, installment, credit note) of a debtor."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    document_id: str = Field(
        min_length=1, description="Creditor's identifier of the document.", examples=["FC-0001"]
    )
    kind: DocumentKind = Field(description="What the document is.")
    product: str | None = Field(
        default=None, description="Product line (loan, card, service...).", examples=["loan"]
    )
    issued_on: date | None = Field(default=None, description="Issue date, if given.")
    due_on: date = Field(description="Date the document fell or falls due.")
    amount: Money = Field(
        description="Outstanding amount of the document (principal + interest + fees); "
        "negative for a credit note."
    )
    principal: Money | None = Field(
        default=None, description="Principal part of `amount`, when the creditor gave a breakdown."
    )
    interest: Money | None = Field(
        default=None,
        description="Interest part of `amount`: what the creditor reported plus what the tenant's "
        "interest policy accrued on overdue principal.",
    )
    fees: Money | None = Field(
        default=None, description="Fees and charges part of `amount`, when given."
    )


class DebtorAttributes(BaseModel):
    """What the creditor tells about the debtor besides the debt, for segmentation."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    zone: str | None = Field(default=None, description="Zone or branch.", examples=["Lima Norte"])
    customer_type: str | None = Field(
        default=None, description="Customer type or segment at the creditor.", examples=["PYME"]
    )
    risk_score: str | None = Field(
        default=None, description="Creditor's risk score, as given.", examples=["640"]
    )
    custom: dict[str, str] = Field(
        default_factory=dict, description="Any other column the import profile keeps."
    )


class EventPayload(BaseModel):
    """Base of every published payload: tolerant reading, immutable values."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: ClassVar[Topic]
    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    # True for events other systems publish TO Recupero (the AsyncAPI "receive" operations).
    inbound: ClassVar[bool] = False

    tenant_id: TenantId
    debtor_id: DebtorId


class DebtImported(EventPayload):
    """A debtor's debt as the creditor reported it in an import changed (or is new)."""

    topic = Topic.DEBT_IMPORTED
    event_type = "com.recupero.debt.imported"
    # v2: a debtor whose documents were all settled by the creditor has no documents, `change` may
    # be `settled`, and what changed is listed. Every v1 event is a valid v2 event.
    version = 2

    import_id: UUID = Field(description="Import job that produced this event.")
    as_of: UtcDatetime = Field(
        description="When the creditor's snapshot was taken; payments received after this "
        "instant are not yet reflected in `balance`."
    )
    contact: ContactDetails = Field(description="How to reach the debtor.")
    attributes: DebtorAttributes | None = Field(
        default=None, description="Zone, customer type, score and custom attributes, if given."
    )
    documents: list[DebtDocument] = Field(
        description="All of the debtor's open documents after this import; empty when the "
        "creditor settled them all."
    )
    balance: Money = Field(
        description="Updated total debt: the sum of the documents, credit notes netted."
    )
    oldest_due_on: date = Field(
        description="Due date of the oldest document that still owes money; when none does, of "
        "the oldest document the creditor listed (days past due stop mattering at zero balance)."
    )
    change: str = Field(
        pattern=r"^(new|changed|settled)$",
        description="`new` the first time the debtor is seen, `changed` when the debt moved, "
        "`settled` when a full snapshot no longer lists any of the debtor's documents.",
    )
    previous_balance: Money | None = Field(
        default=None, description="Balance before this import; null for a new debtor."
    )
    documents_added: list[str] = Field(
        default_factory=list, description="Documents this import added."
    )
    documents_changed: list[str] = Field(
        default_factory=list, description="Documents whose amount, due date or kind changed."
    )
    documents_settled: list[str] = Field(
        default_factory=list,
        description="Documents the creditor no longer lists (full-snapshot imports only).",
    )


class DebtorSegmented(EventPayload):
    """The segmenter placed a debtor in a segment and collection stage."""

    topic = Topic.DEBTOR_SEGMENTED
    event_type = "com.recupero.debtor.segmented"

    segment: str = Field(
        description="Segment (aging bucket) the debtor is now in.", examples=["1-30"]
    )
    stage: CollectionStage = Field(description="Collection stage the segment maps to.")
    strategy: str | None = Field(
        default=None,
        description="Strategy the tenant's rule set maps the segment to; null when it names none.",
        examples=["negotiation"],
    )
    previous_segment: str | None = Field(
        default=None, description="Segment before this decision; null the first time."
    )
    previous_stage: CollectionStage | None = Field(
        default=None, description="Stage before this decision; null the first time."
    )
    days_past_due: int = Field(
        description="Days past due of the oldest unpaid document, in the debtor's time zone; "
        "negative while not yet due."
    )
    balance: Money = Field(description="Outstanding balance after payments known to the segmenter.")
    snapshot_balance: Money = Field(
        description="Balance in the creditor's latest snapshot, before later payments."
    )
    snapshot_as_of: UtcDatetime = Field(
        description="When that snapshot was taken; payments received after it reduce `balance`."
    )
    oldest_due_on: date = Field(description="Due date of the oldest unpaid document.")
    contact: ContactDetails = Field(description="How to reach the debtor.")
    zone: str | None = Field(
        default=None,
        description="The creditor's zone or branch of the debtor, for agents' work queues; null "
        "when the creditor gave none or this decision did not look it up.",
        examples=["Lima Norte"],
    )
    propensity_score: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="The segmenter's payment-propensity score (0-100, see docs/segmentation.md) "
        "when the debtor was placed; null when this decision did not compute it.",
        examples=[45],
    )
    ruleset_version: str = Field(
        description="Rule set version that decided.", examples=["default-1"]
    )
    reason: str = Field(
        description="Human-readable reason: which rule matched and why.",
        examples=["rule '1-30': 1 <= days_past_due <= 30"],
    )
    evaluated_at: UtcDatetime = Field(description="When the rule set was evaluated.")


class ActionDue(EventPayload):
    """A scheduled collection action came due and must be carried out now."""

    topic = Topic.ACTION_DUE
    event_type = "com.recupero.action.due"

    action_id: UUID = Field(
        description="Unique action id; providers are called with an idempotency key derived "
        "from it, so one action causes at most one contact."
    )
    channel: Channel = Field(description="Channel to contact the debtor on.")
    template: str = Field(description="Template to render.", examples=["first-reminder"])
    strategy: str = Field(
        description="Strategy and step that scheduled it.", examples=["default/1"]
    )
    scheduled_for: UtcDatetime = Field(description="When the action was planned to happen.")
    contact: ContactDetails = Field(description="Recipient.")
    balance: Money = Field(description="Outstanding balance to mention in the message.")
    days_past_due: int = Field(description="Days past due when the action was scheduled.")
    oldest_due_on: date = Field(description="Due date of the oldest unpaid document.")


class MessageSent(EventPayload):
    """A provider accepted a message for a debtor."""

    topic = Topic.MESSAGE_SENT
    event_type = "com.recupero.message.sent"

    action_id: UUID = Field(description="Action this message carries out.")
    channel: Channel = Field(description="Channel used.")
    provider: str = Field(description="Provider that accepted the message.", examples=["smtp"])
    provider_message_id: str = Field(
        description="Provider's id of the message (SMTP Message-ID, WhatsApp wamid, Twilio SID)."
    )
    template: str = Field(description="Template rendered.")
    sent_at: UtcDatetime = Field(description="When the provider accepted the message.")


class PromiseRegistered(EventPayload):
    """A debtor promised to pay an amount by a date (promesa de pago)."""

    topic = Topic.PROMISE_REGISTERED
    event_type = "com.recupero.promise.registered"

    promise_id: UUID = Field(description="Unique promise id.")
    amount: Money = Field(description="Promised amount (positive).")
    promised_on: date = Field(description="Date by which the debtor promised to pay.")
    source: str = Field(
        pattern=r"^(portal|chatbot|agent|ivr)$", description="Where the promise was made."
    )
    registered_at: UtcDatetime = Field(description="When the promise was recorded.")


class PaymentReceived(EventPayload):
    """Money from a debtor was received and recorded."""

    topic = Topic.PAYMENT_RECEIVED
    event_type = "com.recupero.payment.received"

    payment_id: UUID = Field(description="Recupero's id of the payment.")
    external_reference: str | None = Field(
        default=None,
        description="Provider's or bank's reference, unique per tenant when given.",
        examples=["MP-123456789"],
    )
    amount: Money = Field(description="Amount received (positive).")
    method: str = Field(description="How it was paid.", examples=["bank_transfer"])
    received_at: UtcDatetime = Field(description="When the money was received.")


class MessageStatus(StrEnum):
    """What a provider reported about a message after accepting it."""

    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    REPLIED = "replied"


class MessageStatusChanged(EventPayload):
    """A provider reported a message delivered, read, failed, or the debtor replied to it."""

    topic = Topic.MESSAGE_STATUS_CHANGED
    event_type = "com.recupero.message.status.changed"

    action_id: UUID = Field(description="Action the message carried out.")
    channel: Channel = Field(description="Channel of the message.")
    status: MessageStatus = Field(description="The message's new status.")
    occurred_at: UtcDatetime = Field(description="When the provider saw the change.")
    detail: str | None = Field(
        default=None,
        description="Provider's error or the start of the reply, when there is one.",
        examples=["131026: message undeliverable"],
    )
    opt_out: bool = Field(
        default=False,
        description="True when the debtor's reply asks to stop messages on this channel (BAJA, "
        "STOP, NO MOLESTAR): the channel must not be used for this debtor again.",
    )


class PromiseOutcome(StrEnum):
    """How a promise to pay ended."""

    KEPT = "kept"
    PARTIALLY_KEPT = "partially_kept"
    BROKEN = "broken"


class PromiseResolved(EventPayload):
    """A promise to pay was judged: kept (paid in full), or at its deadline partially kept or
    broken."""

    topic = Topic.PROMISE_RESOLVED
    event_type = "com.recupero.promise.resolved"

    promise_id: UUID = Field(description="The promise judged.")
    outcome: PromiseOutcome = Field(description="How it ended.")
    promised: Money = Field(description="Amount promised.")
    paid: Money = Field(description="Paid towards it before the deadline.")
    promised_on: date = Field(description="Date the debtor promised to pay by.")
    deadline: UtcDatetime = Field(
        description="End of the promised day plus the strategy's grace days, debtor's time zone."
    )
    resolved_at: UtcDatetime = Field(description="When the outcome was decided.")
    reason: str = Field(
        description="Human-readable summary.",
        examples=["broken: paid 0 MXN of 150000 MXN promised by 2026-11-20"],
    )


class AgentTaskOutcome(StrEnum):
    """What an agent recorded after working a task."""

    CONTACTED = "contacted"
    PROMISE = "promise"
    REFUSED = "refused"
    WRONG_NUMBER = "wrong_number"
    NO_ANSWER = "no_answer"


class AgentTaskCompleted(EventPayload):
    """An agent worked a collection task (call, visit, referral, follow-up) and recorded how it
    went."""

    topic = Topic.AGENT_TASK_COMPLETED
    event_type = "com.recupero.agent.task.completed"

    task_id: UUID = Field(description="The task worked.")
    action_id: UUID = Field(description="Strategy action that created the task.")
    agent_id: str = Field(min_length=1, description="Agent who worked it.", examples=["ag-17"])
    skill: str = Field(
        description="Kind of work: agent_call, field_visit, legal_referral or follow_up."
    )
    outcome: AgentTaskOutcome = Field(description="What happened.")
    note: str | None = Field(default=None, description="The agent's note.")
    completed_at: UtcDatetime = Field(description="When the outcome was recorded.")


class SubmittedDocument(BaseModel):
    """One debt document as a core system sends it. Values are text, validated by ingest with the
    same rules as a file, so a bad value becomes a reported rejection, not a lost message."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    document_id: str = Field(min_length=1, description="Creditor's id of the document.")
    document_type: str | None = Field(
        default=None,
        description="`invoice`, `installment`, `credit_note` or `debit_note`; default invoice.",
    )
    product: str | None = Field(default=None, description="Product line.")
    issued_on: str | None = Field(default=None, description="Issue date, YYYY-MM-DD.")
    due_on: str = Field(description="Due date, YYYY-MM-DD.", examples=["2026-10-31"])
    amount: str | None = Field(
        default=None,
        description="Outstanding total as a decimal string (point separator); or give "
        "`principal` and optionally `interest` and `fees`.",
        examples=["1500.75"],
    )
    principal: str | None = Field(default=None, description="Principal, decimal string.")
    interest: str | None = Field(default=None, description="Interest, decimal string.")
    fees: str | None = Field(default=None, description="Fees, decimal string.")
    currency: str = Field(description="ISO-4217 currency code.", examples=["PEN"])


class DebtRecordsSubmitted(EventPayload):
    """A core system's current view of one debtor's open documents (inbound to Recupero)."""

    topic = Topic.DEBT_RECORDS
    event_type = "com.recupero.debt.records.submitted"
    inbound = True

    name: str = Field(min_length=1, description="Debtor's full name.")
    email: str | None = Field(default=None, description="Email address.")
    phone: str | None = Field(
        default=None, description="Phone number; normalised to E.164 by the debtor's country."
    )
    country: str | None = Field(default=None, description="ISO-3166 alpha-2 country.")
    time_zone: str | None = Field(default=None, description="IANA time zone.")
    locale: str | None = Field(default=None, description="BCP-47 locale for messages.")
    zone: str | None = Field(default=None, description="Zone or branch.")
    customer_type: str | None = Field(default=None, description="Customer type at the creditor.")
    risk_score: str | None = Field(default=None, description="Creditor's risk score.")
    address_line_1: str | None = Field(
        default=None,
        description="Postal address for letters: street and number. With a street line, "
        "`city` is required.",
        examples=["Av. Corrientes 1234"],
    )
    address_line_2: str | None = Field(
        default=None, description="Postal address: a second street line (floor, flat, barrio)."
    )
    city: str | None = Field(default=None, description="Postal address: city or locality.")
    region: str | None = Field(
        default=None, description="Postal address: state, province or department."
    )
    postal_code: str | None = Field(default=None, description="Postal address: postal code.")
    address_country: str | None = Field(
        default=None,
        description="Postal address: ISO-3166 alpha-2 country; default the debtor's `country`.",
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Custom attributes kept for segmentation."
    )
    documents: list[SubmittedDocument] = Field(
        min_length=1, description="The debtor's documents (added to or updating what is known)."
    )


PAYLOAD_BY_TOPIC: dict[Topic, type[EventPayload]] = {
    model.topic: model
    for model in (
        DebtImported,
        DebtorSegmented,
        ActionDue,
        MessageSent,
        PromiseRegistered,
        PaymentReceived,
        DebtRecordsSubmitted,
        MessageStatusChanged,
        PromiseResolved,
        AgentTaskCompleted,
    )
}

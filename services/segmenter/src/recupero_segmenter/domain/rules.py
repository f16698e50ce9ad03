"""The segmentation language: the facts a rule may test, and the parsed form of a rule set.

A rule set is data a tenant uploads (YAML or JSON). It is parsed into these immutable values by
`domain.parsing`, then either interpreted in Python (`domain.evaluation`, one debtor at a time) or
compiled to one SQL `CASE` (the adapters, the whole portfolio at once). Both read the same tree.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from recupero_events import Channel, CollectionStage


class Kind(StrEnum):
    """Type of a field, which decides the operators and operands a leaf may use."""

    INT = "int"
    MONEY = "money"
    TEXT = "text"
    ENUM = "enum"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: Kind
    description: str
    values: tuple[str, ...] = ()  # the allowed values of an ENUM


CUSTOM_PREFIX = "custom."
_CHANNELS = tuple(channel.value for channel in Channel)

FIELDS: Mapping[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec(
            "days_past_due",
            Kind.INT,
            "Days from the oldest unpaid document's due date to today in the debtor's time zone; "
            "zero or negative while not yet due.",
        ),
        FieldSpec(
            "balance",
            Kind.MONEY,
            "Outstanding balance in minor units: the creditor's latest snapshot less the "
            "payments received after it. Compared per currency.",
        ),
        FieldSpec("currency", Kind.TEXT, "ISO-4217 currency of the debt."),
        FieldSpec("country", Kind.TEXT, "ISO-3166 alpha-2 country of the debtor."),
        FieldSpec(
            "product",
            Kind.TEXT,
            "Product line of the oldest document that still owes money (the one that sets "
            "days past due).",
        ),
        FieldSpec("zone", Kind.TEXT, "Zone or branch, as imported."),
        FieldSpec("customer_type", Kind.TEXT, "Customer type at the creditor, as imported."),
        FieldSpec(
            "risk_score",
            Kind.INT,
            "Creditor's risk score as imported, when it is a number (decimals truncated).",
        ),
        FieldSpec(
            "preferred_channel",
            Kind.ENUM,
            "The custom attribute `preferred_channel` when it names a channel; otherwise "
            "whatsapp when a phone is known, email when an email is known, else letter.",
            _CHANNELS,
        ),
        FieldSpec("documents_count", Kind.INT, "Open documents in the latest import."),
        FieldSpec("actions_count", Kind.INT, "Messages sent to the debtor (message-sent)."),
        FieldSpec(
            "last_contact_channel", Kind.ENUM, "Channel of the last message sent.", _CHANNELS
        ),
        FieldSpec(
            "days_since_last_contact",
            Kind.INT,
            "Days since the last message was sent, in the debtor's time zone; unset if never.",
        ),
        FieldSpec("promises_made", Kind.INT, "Promises to pay registered (promise-registered)."),
        FieldSpec("promises_kept", Kind.INT, "Promises kept."),
        FieldSpec("promises_broken", Kind.INT, "Promises broken."),
        FieldSpec(
            "days_since_last_promise",
            Kind.INT,
            "Days since the last promise was registered; unset if never.",
        ),
        FieldSpec("payments_count", Kind.INT, "Payments received from the debtor."),
        FieldSpec(
            "days_since_last_payment",
            Kind.INT,
            "Days since the last payment was received; unset if never.",
        ),
        FieldSpec(
            "propensity_score",
            Kind.INT,
            "Transparent payment-propensity score, 0 to 100 (see docs/segmentation.md).",
        ),
    )
}


def field_spec(name: str) -> FieldSpec | None:
    """The catalogue entry of a field; `custom.<name>` is any attribute the import kept, as text."""
    if name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX):
        return FieldSpec(name, Kind.TEXT, "Custom attribute from the import.")
    return FIELDS.get(name)


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    BETWEEN = "between"
    IN = "in"
    NOT_IN = "not_in"
    EXISTS = "exists"


OPERATORS: Mapping[Kind, frozenset[Op]] = {
    Kind.INT: frozenset(Op),
    Kind.MONEY: frozenset(Op) - {Op.IN, Op.NOT_IN},
    Kind.TEXT: frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN, Op.EXISTS}),
    Kind.ENUM: frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN, Op.EXISTS}),
}

# An operand: a number or text for eq/ne/lt/...; (low, high) for between; a tuple of values for
# in/not_in; a bool for exists.
Operand = int | str | bool | tuple[int, int] | tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    """A leaf: `field op operand`. A comparison with an unset value is false (only `exists` looks
    at whether it is set). Money compares per currency when `by_currency` is given: a debtor in a
    currency that is not listed does not match."""

    field: str
    op: Op
    operand: Operand | None = None
    by_currency: tuple[tuple[str, Operand], ...] = ()


@dataclass(frozen=True, slots=True)
class All:
    items: tuple["Condition", ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple["Condition", ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: "Condition"


Condition = Compare | All | AnyOf | Not
ALWAYS: Condition = All(())


@dataclass(frozen=True, slots=True)
class Target:
    """Where a match puts the debtor."""

    name: str
    stage: CollectionStage
    strategy: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    target: Target
    when: Condition
    band: str | None = None  # the band family this segment belongs to, if any

    @property
    def name(self) -> str:
        return self.target.name


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Ordered segments (first match wins) and the default for a debtor that matches none."""

    segments: tuple[Segment, ...]
    default: Target
    bands: Mapping[str, str] = field(default_factory=dict)  # family name -> field
    description: str | None = None

    def targets(self) -> tuple[Target, ...]:
        """Every outcome, indexed as the compiled evaluators number them; the default is last."""
        return (*(segment.target for segment in self.segments), self.default)

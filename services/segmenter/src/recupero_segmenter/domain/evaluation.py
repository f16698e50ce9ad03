"""Evaluate a rule set for one debtor, in Python: what the event handlers use.

Its SQL twin (`adapters.rule_sql`) evaluates the same rule set for a whole portfolio at once; a
property test runs both on random debtors and random rule sets and requires the same answer.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recupero_segmenter.domain.propensity import PropensityInputs, propensity
from recupero_segmenter.domain.rules import (
    CUSTOM_PREFIX,
    All,
    AnyOf,
    Compare,
    Condition,
    Not,
    Op,
    Operand,
    RuleSet,
    Target,
)

FieldValue = int | str | None


@dataclass(frozen=True, slots=True)
class DebtorFacts:
    """What the segmenter knows of a debtor; the columns of its `debtors` table."""

    balance_minor: int
    currency: str
    oldest_due_on: date
    time_zone: str
    country: str | None = None
    product: str | None = None
    zone: str | None = None
    customer_type: str | None = None
    risk_score: int | None = None
    preferred_channel: str | None = None
    documents_count: int = 0
    custom: Mapping[str, str] = field(default_factory=dict)
    actions_count: int = 0
    last_contact_channel: str | None = None
    last_contact_on: date | None = None
    promises_made: int = 0
    promises_kept: int = 0
    promises_broken: int = 0
    last_promise_on: date | None = None
    payments_count: int = 0
    last_payment_on: date | None = None


def local_date(now: datetime, time_zone: str) -> date:
    """Today in the debtor's time zone (UTC when the zone is unknown)."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return now.astimezone(zone).date()


def _days_since(today: date, then: date | None) -> int | None:
    return None if then is None else (today - then).days


def propensity_inputs(facts: DebtorFacts, today: date) -> PropensityInputs:
    return PropensityInputs(
        days_past_due=(today - facts.oldest_due_on).days,
        promises_kept=facts.promises_kept,
        promises_broken=facts.promises_broken,
        payments_count=facts.payments_count,
        days_since_last_payment=_days_since(today, facts.last_payment_on),
        actions_count=facts.actions_count,
    )


def field_values(facts: DebtorFacts, today: date) -> dict[str, FieldValue]:
    """Every catalogue field's value for this debtor on this (local) date."""
    return {
        "days_past_due": (today - facts.oldest_due_on).days,
        "balance": facts.balance_minor,
        "currency": facts.currency,
        "country": facts.country,
        "product": facts.product,
        "zone": facts.zone,
        "customer_type": facts.customer_type,
        "risk_score": facts.risk_score,
        "preferred_channel": facts.preferred_channel,
        "documents_count": facts.documents_count,
        "actions_count": facts.actions_count,
        "last_contact_channel": facts.last_contact_channel,
        "days_since_last_contact": _days_since(today, facts.last_contact_on),
        "promises_made": facts.promises_made,
        "promises_kept": facts.promises_kept,
        "promises_broken": facts.promises_broken,
        "days_since_last_promise": _days_since(today, facts.last_promise_on),
        "payments_count": facts.payments_count,
        "days_since_last_payment": _days_since(today, facts.last_payment_on),
        "propensity_score": propensity(propensity_inputs(facts, today)).score,
        **{CUSTOM_PREFIX + key: value for key, value in facts.custom.items()},
    }


def _compare(value: int | str, op: Op, operand: Operand) -> bool:
    match op:
        case Op.EQ:
            return value == operand
        case Op.NE:
            return value != operand
        case Op.IN:
            assert isinstance(operand, tuple)
            return value in operand
        case Op.NOT_IN:
            assert isinstance(operand, tuple)
            return value not in operand
        case Op.BETWEEN:
            assert isinstance(operand, tuple) and isinstance(value, int)
            low, high = operand
            assert isinstance(low, int) and isinstance(high, int)
            return low <= value <= high
    assert isinstance(value, int) and isinstance(operand, int)
    match op:
        case Op.LT:
            return value < operand
        case Op.LTE:
            return value <= operand
        case Op.GT:
            return value > operand
        case Op.GTE:
            return value >= operand
    raise AssertionError(f"operator {op} not handled")


def matches(condition: Condition, values: Mapping[str, FieldValue]) -> bool:
    match condition:
        case All(items):
            return all(matches(item, values) for item in items)
        case AnyOf(items):
            return any(matches(item, values) for item in items)
        case Not(item):
            return not matches(item, values)
        case Compare(field_name, op, operand, by_currency):
            value = values.get(field_name)
            if op is Op.EXISTS:
                return (value is not None) == operand
            if value is None:
                return False
            if by_currency:
                operand = dict(by_currency).get(str(values.get("currency")))
            if operand is None:
                return False
            return _compare(value, op, operand)
    raise AssertionError(f"not a condition: {condition!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """Which rule placed the debtor: its index in `RuleSet.targets()` and why."""

    index: int
    target: Target
    reason: str


def reasons(ruleset: RuleSet) -> tuple[str, ...]:
    """The reason text of every outcome, indexed like `RuleSet.targets()`."""
    return (
        *(f"rule '{s.name}': {describe(s.when)}" for s in ruleset.segments),
        f"default segment '{ruleset.default.name}': no rule matched",
    )


def evaluate(ruleset: RuleSet, values: Mapping[str, FieldValue]) -> Decision:
    """First match wins; a debtor that matches nothing goes to the default segment."""
    texts = reasons(ruleset)
    for index, segment in enumerate(ruleset.segments):
        if matches(segment.when, values):
            return Decision(index, segment.target, texts[index])
    index = len(ruleset.segments)
    return Decision(index, ruleset.default, texts[index])


def _operand_text(operand: Operand | None) -> str:
    if isinstance(operand, tuple):
        return "[" + ", ".join(str(item) for item in operand) + "]"
    return str(operand)


def _leaf_text(name: str, op: Op, operand: Operand | None) -> str:
    if op is Op.BETWEEN and isinstance(operand, tuple):
        return f"{operand[0]} <= {name} <= {operand[1]}"
    if op is Op.EXISTS:
        return f"{name} is {'set' if operand else 'not set'}"
    symbol = {
        Op.EQ: "==",
        Op.NE: "!=",
        Op.LT: "<",
        Op.LTE: "<=",
        Op.GT: ">",
        Op.GTE: ">=",
        Op.IN: "in",
        Op.NOT_IN: "not in",
    }[op]
    return f"{name} {symbol} {_operand_text(operand)}"


def describe(condition: Condition) -> str:
    """The condition in words, for the `reason` of a placement."""
    match condition:
        case All(()):
            return "always"
        case All(items):
            return " and ".join(_grouped(item) for item in items)
        case AnyOf(items):
            return " or ".join(_grouped(item) for item in items)
        case Not(item):
            return f"not {_grouped(item)}"
        case Compare(name, op, operand, by_currency):
            if by_currency:
                return " or ".join(
                    f"{_leaf_text(name, op, value)} {currency}" for currency, value in by_currency
                )
            return _leaf_text(name, op, operand)
    raise AssertionError(f"not a condition: {condition!r}")


def _grouped(condition: Condition) -> str:
    text = describe(condition)
    single = isinstance(condition, Compare) and len(condition.by_currency) <= 1
    return text if single or isinstance(condition, Not) else f"({text})"

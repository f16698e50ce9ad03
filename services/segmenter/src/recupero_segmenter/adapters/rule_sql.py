"""Compile a rule set to one SQL `CASE WHEN ... THEN <segment index> ... END` over the debtors
table, the twin of `domain.evaluation` for a whole portfolio at once.

Every value from the rule set is a bound parameter; nothing a tenant writes is spliced into SQL.
Each leaf is wrapped in `coalesce(..., false)`, so an unset value makes a comparison false (as in
Python) instead of NULL, and `not` stays the negation of what matched.
"""

from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    FromClause,
    Integer,
    Text,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    true,
    type_coerce,
)

from recupero_segmenter.domain import propensity as score
from recupero_segmenter.domain.rules import (
    CUSTOM_PREFIX,
    All,
    AnyOf,
    Compare,
    Condition,
    Kind,
    Not,
    Op,
    Operand,
    RuleSet,
    field_spec,
)

# Fields that are a column of the same name.
_COLUMNS = {
    "currency": "currency",
    "country": "country",
    "product": "product",
    "zone": "zone",
    "customer_type": "customer_type",
    "risk_score": "risk_score",
    "preferred_channel": "preferred_channel",
    "documents_count": "documents_count",
    "actions_count": "actions_count",
    "last_contact_channel": "last_contact_channel",
    "promises_made": "promises_made",
    "promises_kept": "promises_kept",
    "promises_broken": "promises_broken",
    "payments_count": "payments_count",
    "balance": "balance_minor",
}
_DAYS_SINCE = {
    "days_since_last_contact": "last_contact_on",
    "days_since_last_promise": "last_promise_on",
    "days_since_last_payment": "last_payment_on",
}


class RuleSql:
    """SQL expressions over one debtors row (`debtor`) on the debtor's local date (`today`)."""

    def __init__(self, debtor: FromClause, today: ColumnElement[date]) -> None:
        self.d = debtor.c
        self.today = today

    def days_since(self, column: ColumnElement[date]) -> ColumnElement[int]:
        return type_coerce(self.today - column, Integer)

    @property
    def days_past_due(self) -> ColumnElement[int]:
        return self.days_since(self.d.oldest_due_on)

    def field(self, name: str) -> ColumnElement[Any]:
        if name == "days_past_due":
            return self.days_past_due
        if name == "propensity_score":
            return self.propensity_score()
        if name in _DAYS_SINCE:
            return self.days_since(self.d[_DAYS_SINCE[name]])
        if name.startswith(CUSTOM_PREFIX):
            key = name.removeprefix(CUSTOM_PREFIX)
            return self.d.custom.op("->>")(literal(key, Text))
        return self.d[_COLUMNS[name]]

    def propensity_score(self) -> ColumnElement[int]:
        d, dpd = self.d, self.days_past_due
        aging = case(
            *((dpd <= upper, penalty) for upper, penalty in score.AGING_PENALTIES),
            else_=score.AGING_BEYOND,
        )
        recent = case(
            (
                self.days_since(d.last_payment_on) <= score.RECENT_PAYMENT_DAYS,
                score.RECENT_PAYMENT_POINTS,
            ),
            else_=0,
        )
        unanswered = case(
            (
                and_(
                    d.actions_count >= score.UNANSWERED_ACTIONS,
                    d.payments_count == 0,
                ),
                score.UNANSWERED_POINTS,
            ),
            else_=0,
        )
        total = (
            score.BASE
            + score.KEPT_POINTS * func.least(d.promises_kept, score.KEPT_CAP)
            - score.BROKEN_POINTS * func.least(d.promises_broken, score.BROKEN_CAP)
            + score.PAYMENT_POINTS * func.least(d.payments_count, score.PAYMENT_CAP)
            + recent
            - aging
            - unanswered
        )
        return type_coerce(func.greatest(0, func.least(100, total)), Integer)

    def condition(self, condition: Condition) -> ColumnElement[bool]:
        match condition:
            case All(()):
                return true()
            case All(items):
                return and_(*(self.condition(item) for item in items))
            case AnyOf(items):
                return or_(*(self.condition(item) for item in items))
            case Not(item):
                return not_(self.condition(item))
            case Compare():
                return self.leaf(condition)
        raise AssertionError(f"not a condition: {condition!r}")

    def leaf(self, leaf: Compare) -> ColumnElement[bool]:
        spec = field_spec(leaf.field)
        assert spec is not None
        value = self.field(leaf.field)
        if leaf.op is Op.EXISTS:
            return value.is_not(None) if leaf.operand else value.is_(None)
        numeric = spec.kind in (Kind.INT, Kind.MONEY)
        if leaf.by_currency:
            test: ColumnElement[bool] = or_(
                *(
                    and_(
                        self.d.currency == literal(currency, Text),
                        _op(value, leaf.op, operand, numeric),
                    )
                    for currency, operand in leaf.by_currency
                )
            )
        else:
            assert leaf.operand is not None
            test = _op(value, leaf.op, leaf.operand, numeric)
        return func.coalesce(test, false(), type_=Boolean)

    def segment_index(self, ruleset: RuleSet) -> ColumnElement[int]:
        """Index in `ruleset.targets()` of the first segment that matches; else the default's."""
        default = len(ruleset.segments)
        if not ruleset.segments:
            return literal(default, Integer)
        return case(
            *((self.condition(s.when), index) for index, s in enumerate(ruleset.segments)),
            else_=default,
        )


def _bind(value: int | str, numeric: bool) -> ColumnElement[Any]:
    return literal(value, BigInteger if numeric else Text)


def _op(value: ColumnElement[Any], op: Op, operand: Operand, numeric: bool) -> ColumnElement[bool]:
    if op is Op.BETWEEN:
        assert isinstance(operand, tuple)
        low, high = operand
        return value.between(_bind(low, True), _bind(high, True))
    if op in (Op.IN, Op.NOT_IN):
        assert isinstance(operand, tuple)
        items = [_bind(item, numeric) for item in operand]
        return value.in_(items) if op is Op.IN else value.not_in(items)
    assert isinstance(operand, int | str) and not isinstance(operand, bool)
    bound = _bind(operand, numeric)
    match op:
        case Op.EQ:
            return value == bound
        case Op.NE:
            return value != bound
        case Op.LT:
            return value < bound
        case Op.LTE:
            return value <= bound
        case Op.GT:
            return value > bound
        case Op.GTE:
            return value >= bound
    raise AssertionError(f"operator {op} not handled")

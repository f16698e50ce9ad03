"""A transparent payment-propensity score: points, not a model, so a supervisor can redo the sum.

    score = 50
          + 10 x kept promises (at most 3)
          - 15 x broken promises (at most 3)
          +  5 x payments received (at most 4)
          + 10 if the last payment was at most 30 days ago
          - aging: 0 not yet due, 5 for 1-30 days past due, 10 for 31-60, 15 for 61-90,
                   25 for 91-180, 35 beyond 180
          - 10 if at least 5 messages were sent and nothing was ever paid
    clamped to 0..100.

The SQL twin of this formula is in `adapters.rule_sql`; a property test proves they agree.
"""

from dataclasses import dataclass

BASE = 50
KEPT_POINTS, KEPT_CAP = 10, 3
BROKEN_POINTS, BROKEN_CAP = 15, 3
PAYMENT_POINTS, PAYMENT_CAP = 5, 4
RECENT_PAYMENT_DAYS, RECENT_PAYMENT_POINTS = 30, 10
# (days past due at most, points taken off); beyond the last bound: AGING_BEYOND.
AGING_PENALTIES = ((0, 0), (30, 5), (60, 10), (90, 15), (180, 25))
AGING_BEYOND = 35
UNANSWERED_ACTIONS, UNANSWERED_POINTS = 5, 10


@dataclass(frozen=True, slots=True)
class PropensityInputs:
    days_past_due: int
    promises_kept: int
    promises_broken: int
    payments_count: int
    days_since_last_payment: int | None
    actions_count: int


@dataclass(frozen=True, slots=True)
class Propensity:
    score: int
    inputs: PropensityInputs
    points: dict[str, int]  # each term of the sum, so the score explains itself


def aging_penalty(days_past_due: int) -> int:
    for upper, penalty in AGING_PENALTIES:
        if days_past_due <= upper:
            return penalty
    return AGING_BEYOND


def propensity(inputs: PropensityInputs) -> Propensity:
    recent = inputs.days_since_last_payment
    points = {
        "base": BASE,
        "promises_kept": KEPT_POINTS * min(inputs.promises_kept, KEPT_CAP),
        "promises_broken": -BROKEN_POINTS * min(inputs.promises_broken, BROKEN_CAP),
        "payments": PAYMENT_POINTS * min(inputs.payments_count, PAYMENT_CAP),
        "recent_payment": RECENT_PAYMENT_POINTS
        if recent is not None and recent <= RECENT_PAYMENT_DAYS
        else 0,
        "aging": -aging_penalty(inputs.days_past_due),
        "unanswered_actions": -UNANSWERED_POINTS
        if inputs.actions_count >= UNANSWERED_ACTIONS and inputs.payments_count == 0
        else 0,
    }
    return Propensity(max(0, min(100, sum(points.values()))), inputs, points)

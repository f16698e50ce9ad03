"""Placement of a debtor, and the two sums everything else rests on: days past due and the
outstanding balance.

Days past due count from the oldest unpaid document's due date to *today in the debtor's time zone*,
so a debtor in Lima and one in Mexico City age at their own midnight.
"""

from dataclasses import dataclass
from datetime import date, datetime

from recupero_events import CollectionStage
from recupero_segmenter.domain.defaults import (
    DEFAULT_RULESET_VERSION,
    SETTLED_SEGMENT,
    default_ruleset,
)
from recupero_segmenter.domain.evaluation import DebtorFacts, evaluate, field_values, local_date

__all__ = [
    "DEFAULT_RULESET_VERSION",
    "SETTLED_SEGMENT",
    "Placement",
    "days_past_due",
    "outstanding",
    "place",
]


@dataclass(frozen=True, slots=True)
class Placement:
    segment: str
    stage: CollectionStage
    days_past_due: int
    reason: str
    ruleset_version: str = DEFAULT_RULESET_VERSION
    strategy: str | None = None


def days_past_due(oldest_due_on: date, now: datetime, time_zone: str) -> int:
    return (local_date(now, time_zone) - oldest_due_on).days


def place(outstanding_minor: int, oldest_due_on: date, now: datetime, time_zone: str) -> Placement:
    """Where the default rule set puts a debtor known only by balance and age."""
    facts = DebtorFacts(outstanding_minor, "XXX", oldest_due_on, time_zone)
    values = field_values(facts, local_date(now, time_zone))
    decision = evaluate(default_ruleset(), values)
    return Placement(
        decision.target.name,
        decision.target.stage,
        days_past_due(oldest_due_on, now, time_zone),
        decision.reason,
        DEFAULT_RULESET_VERSION,
        decision.target.strategy,
    )


def outstanding(
    snapshot_minor: int, snapshot_as_of: datetime, payments: list[tuple[int, datetime]]
) -> int:
    """Snapshot balance less the payments the snapshot could not know about yet."""
    return snapshot_minor - sum(
        amount for amount, received_at in payments if received_at > snapshot_as_of
    )

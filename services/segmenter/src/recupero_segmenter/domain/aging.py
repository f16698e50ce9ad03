"""The default rule set: aging buckets and the collection stage each maps to.

Days past due count from the oldest unpaid document's due date to *today in the debtor's time zone*,
so a debtor in Lima and one in Mexico City age at their own midnight.
"""

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from recupero_events import CollectionStage

DEFAULT_RULESET_VERSION = "default-1"


@dataclass(frozen=True, slots=True)
class AgingBucket:
    name: str
    stage: CollectionStage
    min_days: int | None
    max_days: int | None

    def contains(self, days_past_due: int) -> bool:
        above = self.min_days is None or days_past_due >= self.min_days
        below = self.max_days is None or days_past_due <= self.max_days
        return above and below

    def describe(self) -> str:
        if self.min_days is None:
            return f"days_past_due <= {self.max_days}"
        if self.max_days is None:
            return f"days_past_due >= {self.min_days}"
        return f"{self.min_days} <= days_past_due <= {self.max_days}"


DEFAULT_BUCKETS = (
    AgingBucket("pre-mora", CollectionStage.PREVENTIVE, None, 0),
    AgingBucket("1-30", CollectionStage.ADMINISTRATIVE, 1, 30),
    AgingBucket("31-60", CollectionStage.ADMINISTRATIVE, 31, 60),
    AgingBucket("61-90", CollectionStage.ADMINISTRATIVE, 61, 90),
    AgingBucket("91-180", CollectionStage.EXTRAJUDICIAL, 91, 180),
    AgingBucket("180+", CollectionStage.JUDICIAL, 181, None),
)
SETTLED_SEGMENT = "settled"


@dataclass(frozen=True, slots=True)
class Placement:
    segment: str
    stage: CollectionStage
    days_past_due: int
    reason: str
    ruleset_version: str = DEFAULT_RULESET_VERSION


def days_past_due(oldest_due_on: date, now: datetime, time_zone: str) -> int:
    today = now.astimezone(ZoneInfo(time_zone)).date()
    return (today - oldest_due_on).days


def place(outstanding_minor: int, oldest_due_on: date, now: datetime, time_zone: str) -> Placement:
    dpd = days_past_due(oldest_due_on, now, time_zone)
    if outstanding_minor <= 0:
        return Placement(
            SETTLED_SEGMENT,
            CollectionStage.SETTLED,
            dpd,
            f"rule '{SETTLED_SEGMENT}': outstanding balance {outstanding_minor} <= 0",
        )
    for bucket in DEFAULT_BUCKETS:
        if bucket.contains(dpd):
            return Placement(
                bucket.name, bucket.stage, dpd, f"rule '{bucket.name}': {bucket.describe()}"
            )
    raise AssertionError(f"default buckets leave a gap at {dpd} days")  # the buckets cover all ints


def outstanding(
    snapshot_minor: int, snapshot_as_of: datetime, payments: list[tuple[int, datetime]]
) -> int:
    """Snapshot balance less the payments the snapshot could not know about yet."""
    return snapshot_minor - sum(
        amount for amount, received_at in payments if received_at > snapshot_as_of
    )

"""The default strategy of the walking skeleton: two email reminders, stopped by payment.

Pure: given when a case opened, it says which steps to schedule and when. Tenant-defined strategies
(timed, conditional, multi-channel steps) replace this in a later issue.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from recupero_events import Channel

DEFAULT_STRATEGY = "default-email"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    step: int
    channel: Channel
    template: str
    due_at: datetime

    @property
    def strategy(self) -> str:
        return f"{DEFAULT_STRATEGY}/{self.step}"


def plan_default_strategy(
    opened_at: datetime, first_delay: timedelta, reminder_interval: timedelta
) -> list[PlannedStep]:
    first = opened_at + first_delay
    return [
        PlannedStep(1, Channel.EMAIL, "first-reminder", first),
        PlannedStep(2, Channel.EMAIL, "second-reminder", first + reminder_interval),
    ]


def outstanding(
    snapshot_minor: int, snapshot_as_of: datetime, payments: list[tuple[int, datetime]]
) -> int:
    """Snapshot balance less the payments the snapshot could not know about yet."""
    return snapshot_minor - sum(amount for amount, at in payments if at > snapshot_as_of)

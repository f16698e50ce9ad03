"""Promises to pay (promesas de pago): pending until the promised date plus a grace period, then
kept, partially kept or broken, judged by the payments received after the promise was made.

A promise is judged on the debtor's calendar: promised "by Friday" means until Friday ends in the
debtor's time zone, and a grace of 2 days until Sunday ends.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from uuid import UUID
from zoneinfo import ZoneInfo

from recupero_events import Money

DEFAULT_GRACE_DAYS = 2


class PromiseOutcome(StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    PARTIALLY_KEPT = "partially_kept"
    BROKEN = "broken"

    @property
    def settled(self) -> bool:
        """The promise no longer pauses the strategy."""
        return self is not PromiseOutcome.PENDING


@dataclass(frozen=True, slots=True)
class Promise:
    promise_id: UUID
    amount: Money
    promised_on: date
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class ReceivedPayment:
    amount: Money
    received_at: datetime


@dataclass(frozen=True, slots=True)
class PromiseEvaluation:
    promise_id: UUID
    outcome: PromiseOutcome
    paid: Money
    deadline: datetime
    reason: str


def promise_deadline(promise: Promise, time_zone: str, grace_days: int) -> datetime:
    """The instant the promise is judged: the end of the promised day plus grace, debtor's time."""
    if grace_days < 0:
        raise ValueError("grace_days cannot be negative")
    last_day = promise.promised_on + timedelta(days=grace_days)
    midnight_after = datetime.combine(last_day + timedelta(days=1), time(0), ZoneInfo(time_zone))
    return midnight_after.astimezone(UTC)


def evaluate_promise(
    promise: Promise,
    payments: Sequence[ReceivedPayment],
    *,
    time_zone: str,
    grace_days: int,
    now: datetime,
) -> PromiseEvaluation:
    """Judge one promise at `now`.

    Payments count when they are in the promise's currency and arrive after the promise was
    registered and before its deadline. Paying the full amount keeps the promise at once; otherwise
    it stays pending until the deadline, then is partially kept (something paid) or broken.
    """
    deadline = promise_deadline(promise, time_zone, grace_days)
    currency = promise.amount.currency
    paid_minor = sum(
        payment.amount.amount_minor
        for payment in payments
        if payment.amount.currency == currency
        and promise.registered_at <= payment.received_at < deadline
        and payment.received_at <= now
    )
    paid = Money(amount_minor=paid_minor, currency=currency)
    promised_minor = promise.amount.amount_minor
    summary = f"paid {_amount(paid)} of {_amount(promise.amount)} promised by {promise.promised_on}"

    if paid_minor >= promised_minor:
        outcome, reason = PromiseOutcome.KEPT, f"kept: {summary}"
    elif now < deadline:
        outcome = PromiseOutcome.PENDING
        reason = f"pending until {deadline.isoformat()}: {summary} so far"
    elif paid_minor > 0:
        outcome, reason = PromiseOutcome.PARTIALLY_KEPT, f"partially kept: {summary}"
    else:
        outcome, reason = PromiseOutcome.BROKEN, f"broken: {summary}"
    return PromiseEvaluation(promise.promise_id, outcome, paid, deadline, reason)


def latest_promise(promises: Sequence[Promise]) -> Promise | None:
    """A new promise replaces the one before it (the debtor renegotiated)."""
    if not promises:
        return None
    return max(promises, key=lambda promise: promise.registered_at)


def _amount(money: Money) -> str:
    return f"{money.amount_minor} {money.currency} (minor units)"

"""Promises to pay: pending until the promised day plus grace ends in the debtor's time zone."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from recupero_events import Money
from recupero_orchestrator.domain.promises import (
    Promise,
    PromiseOutcome,
    ReceivedPayment,
    evaluate_promise,
    latest_promise,
    promise_deadline,
)

ZONE = "America/Lima"  # UTC-5, no daylight saving
REGISTERED = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
PROMISE = Promise(
    uuid4(), Money(amount_minor=100_000, currency="PEN"), date(2026, 11, 10), REGISTERED
)
DEADLINE = datetime(2026, 11, 13, 5, 0, tzinfo=UTC)  # end of 12 Nov in Lima: 10 Nov + 2 days


def paid(amount_minor: int, at: datetime, currency: str = "PEN") -> ReceivedPayment:
    return ReceivedPayment(Money(amount_minor=amount_minor, currency=currency), at)


def judge(payments: list[ReceivedPayment], now: datetime) -> PromiseOutcome:
    return evaluate_promise(PROMISE, payments, time_zone=ZONE, grace_days=2, now=now).outcome


def test_the_deadline_is_the_end_of_the_promised_day_plus_grace_in_local_time() -> None:
    assert promise_deadline(PROMISE, ZONE, 2) == DEADLINE
    assert promise_deadline(PROMISE, ZONE, 0) == datetime(2026, 11, 11, 5, 0, tzinfo=UTC)


def test_a_promise_paid_in_full_is_kept_at_once() -> None:
    early = REGISTERED + timedelta(days=1)
    assert judge([paid(60_000, early), paid(40_000, early)], early) is PromiseOutcome.KEPT


def test_a_promise_is_pending_until_the_deadline_then_partially_kept_or_broken() -> None:
    some = [paid(30_000, REGISTERED + timedelta(days=3))]
    assert judge(some, DEADLINE - timedelta(seconds=1)) is PromiseOutcome.PENDING
    assert judge(some, DEADLINE) is PromiseOutcome.PARTIALLY_KEPT
    assert judge([], DEADLINE) is PromiseOutcome.BROKEN


@pytest.mark.parametrize(
    "payment",
    [
        paid(100_000, REGISTERED - timedelta(hours=1)),  # before the promise
        paid(100_000, DEADLINE + timedelta(hours=1)),  # after the grace period
        paid(100_000, REGISTERED + timedelta(days=1), currency="USD"),  # another currency
    ],
)
def test_payments_outside_the_promise_do_not_keep_it(payment: ReceivedPayment) -> None:
    evaluation = evaluate_promise(
        PROMISE, [payment], time_zone=ZONE, grace_days=2, now=DEADLINE + timedelta(days=1)
    )
    assert evaluation.outcome is PromiseOutcome.BROKEN
    assert evaluation.paid.amount_minor == 0
    assert evaluation.reason.startswith("broken: paid 0 PEN")


def test_a_newer_promise_replaces_the_older_one() -> None:
    renegotiated = Promise(
        uuid4(), PROMISE.amount, date(2026, 11, 20), REGISTERED + timedelta(days=5)
    )
    assert latest_promise([renegotiated, PROMISE]) == renegotiated
    assert latest_promise([]) is None

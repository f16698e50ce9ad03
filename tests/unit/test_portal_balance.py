"""The balance portal users see: the creditor's snapshot net of payments it cannot know about yet."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from recupero_events import Money
from recupero_portal_api.domain.balance import (
    PaymentSeen,
    outstanding_balance,
    totals_by_currency,
)

pytestmark = pytest.mark.unit

SNAPSHOT_AS_OF = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SNAPSHOT = Money(amount_minor=100_000, currency="MXN")


def paid(amount_minor: int, received_at: datetime, currency: str = "MXN") -> PaymentSeen:
    return PaymentSeen(Money(amount_minor=amount_minor, currency=currency), received_at)


def test_without_payments_the_snapshot_is_the_balance() -> None:
    assert outstanding_balance(SNAPSHOT, SNAPSHOT_AS_OF, []) == SNAPSHOT


def test_payment_after_the_snapshot_reduces_the_balance() -> None:
    payment = paid(30_000, SNAPSHOT_AS_OF + timedelta(hours=1))

    assert outstanding_balance(SNAPSHOT, SNAPSHOT_AS_OF, [payment]) == Money(
        amount_minor=70_000, currency="MXN"
    )


def test_payment_the_snapshot_already_reflects_is_not_counted_twice() -> None:
    before = paid(30_000, SNAPSHOT_AS_OF - timedelta(days=1))
    at_the_same_instant = paid(5_000, SNAPSHOT_AS_OF)

    balance = outstanding_balance(SNAPSHOT, SNAPSHOT_AS_OF, [before, at_the_same_instant])

    assert balance == SNAPSHOT


def test_payment_in_another_currency_is_not_netted() -> None:
    dollars = paid(10_000, SNAPSHOT_AS_OF + timedelta(hours=1), currency="USD")

    assert outstanding_balance(SNAPSHOT, SNAPSHOT_AS_OF, [dollars]) == SNAPSHOT


def test_overpayment_leaves_money_in_the_debtors_favour() -> None:
    payment = paid(120_000, SNAPSHOT_AS_OF + timedelta(minutes=5))

    assert outstanding_balance(SNAPSHOT, SNAPSHOT_AS_OF, [payment]).amount_minor == -20_000


def test_the_order_payments_arrive_in_does_not_change_the_balance() -> None:
    payments = [
        paid(10_000, SNAPSHOT_AS_OF + timedelta(days=1)),
        paid(25_000, SNAPSHOT_AS_OF - timedelta(days=2)),
        paid(5_050, SNAPSHOT_AS_OF + timedelta(days=3)),
    ]

    balances = {
        outstanding_balance(SNAPSHOT, SNAPSHOT_AS_OF, order)
        for order in itertools.permutations(payments)
    }

    assert balances == {Money(amount_minor=84_950, currency="MXN")}


def test_a_newer_snapshot_absorbs_the_payments_it_already_reflects() -> None:
    payment = paid(30_000, SNAPSHOT_AS_OF + timedelta(hours=1))
    newer_snapshot = Money(amount_minor=70_000, currency="MXN")

    balance = outstanding_balance(newer_snapshot, SNAPSHOT_AS_OF + timedelta(days=1), [payment])

    assert balance == newer_snapshot


def test_totals_never_mix_currencies() -> None:
    balances = [
        Money(amount_minor=100, currency="MXN"),
        Money(amount_minor=5, currency="CLP"),
        Money(amount_minor=250, currency="MXN"),
    ]

    assert totals_by_currency(balances) == {"CLP": 5, "MXN": 350}
    assert totals_by_currency([]) == {}

"""The balance a user is shown: the creditor's snapshot net of payments it cannot reflect yet."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from recupero_events import Money


@dataclass(frozen=True, slots=True)
class PaymentSeen:
    amount: Money
    received_at: datetime


def outstanding_balance(
    snapshot: Money, snapshot_as_of: datetime, payments: Iterable[PaymentSeen]
) -> Money:
    """Snapshot balance minus every payment received after the snapshot was taken.

    A payment received at or before `snapshot_as_of` is already netted in the creditor's snapshot,
    so subtracting it again would count it twice. The result is a sum, so it does not depend on the
    order in which the snapshot and the payments arrived. Payments in another currency are not
    netted: there is no exchange rate to apply. The result may be negative (money in the debtor's
    favour).
    """
    paid = sum(
        payment.amount.amount_minor
        for payment in payments
        if payment.received_at > snapshot_as_of and payment.amount.currency == snapshot.currency
    )
    return Money(amount_minor=snapshot.amount_minor - paid, currency=snapshot.currency)


def totals_by_currency(balances: Iterable[Money]) -> dict[str, int]:
    """Sum of balances per ISO-4217 currency, in minor units; amounts are never mixed."""
    totals: Counter[str] = Counter()
    for balance in balances:
        totals[balance.currency] += balance.amount_minor
    return dict(sorted(totals.items()))

"""What makes a promise to pay acceptable. Pure; the tenant-configurable policy comes later."""

from datetime import date, timedelta


class PromiseRejected(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_promise(
    *,
    amount_minor: int,
    currency: str,
    debt_currency: str,
    promised_on: date,
    debtor_today: date,
    max_days_ahead: int,
) -> None:
    """Raises `PromiseRejected` naming the field at fault."""
    if amount_minor <= 0:
        raise PromiseRejected("amount.amount_minor", "a promise must be for a positive amount")
    if currency != debt_currency:
        raise PromiseRejected("amount.currency", f"the debt is in {debt_currency}, not {currency}")
    if promised_on < debtor_today:
        raise PromiseRejected(
            "promised_on", f"{promised_on} is in the past (today is {debtor_today} for the debtor)"
        )
    latest = debtor_today + timedelta(days=max_days_ahead)
    if promised_on > latest:
        raise PromiseRejected(
            "promised_on", f"promises can be at most {max_days_ahead} days ahead ({latest})"
        )

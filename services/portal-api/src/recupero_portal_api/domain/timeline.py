"""One-line, human-readable summaries of events for a debtor's timeline."""

from recupero_events import (
    ActionDue,
    DebtImported,
    DebtorSegmented,
    EventPayload,
    MessageSent,
    Money,
    PaymentReceived,
    PromiseRegistered,
)

# ISO-4217 currencies without minor units; every other one our tenants bill in has two.
_ZERO_DECIMAL_CURRENCIES = frozenset(
    {"CLP", "PYG", "JPY", "KRW", "ISK", "UGX", "VND", "XAF", "XOF"}
)


def format_money(money: Money) -> str:
    """`Money(152350, "MXN")` -> `"MXN 1,523.50"`; exact, never through a float."""
    sign = "-" if money.amount_minor < 0 else ""
    if money.currency in _ZERO_DECIMAL_CURRENCIES:
        return f"{money.currency} {sign}{abs(money.amount_minor):,}"
    units, cents = divmod(abs(money.amount_minor), 100)
    return f"{money.currency} {sign}{units:,}.{cents:02d}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def describe(payload: EventPayload) -> str:
    """What happened, as an agent or the debtor would read it in the timeline."""
    match payload:
        case DebtImported():
            verb = "Debt imported" if payload.change == "new" else "Debt updated"
            return (
                f"{verb}: {_plural(len(payload.documents), 'document')}, "
                f"balance {format_money(payload.balance)}"
            )
        case DebtorSegmented():
            moved = (
                f" (was {payload.previous_segment})"
                if payload.previous_segment and payload.previous_segment != payload.segment
                else ""
            )
            return (
                f"Segmented {payload.segment}{moved}, stage {payload.stage.value}, "
                f"{payload.days_past_due} days past due"
            )
        case ActionDue():
            return f"Action due: {payload.template} by {payload.channel.value}"
        case MessageSent():
            return f"Message sent by {payload.channel.value} via {payload.provider}: {payload.template}"
        case PromiseRegistered():
            return (
                f"Promise to pay {format_money(payload.amount)} by "
                f"{payload.promised_on.isoformat()} (via {payload.source})"
            )
        case PaymentReceived():
            return f"Payment received: {format_money(payload.amount)} by {payload.method}"
    return f"{type(payload).__name__} event"

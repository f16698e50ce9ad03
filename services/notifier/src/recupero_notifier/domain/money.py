"""Money as a debtor reads it: integer minor units to `$12,345.67 MXN`."""

# ISO-4217 exponents that differ from the usual 2 among the currencies our tenants bill in.
MINOR_UNIT_EXPONENT: dict[str, int] = {"CLP": 0, "PYG": 0}
DEFAULT_EXPONENT = 2

# Symbols a Latin American reader expects; the ISO code after the amount removes any ambiguity.
SYMBOL: dict[str, str] = {
    "BRL": "R$",
    "CRC": "₡",
    "EUR": "€",
    "GTQ": "Q",
    "PEN": "S/",
    "PYG": "₲",
}
DEFAULT_SYMBOL = "$"


def format_money(amount_minor: int, currency: str) -> str:
    """`1234567, "MXN"` -> `$12,345.67 MXN`; `1234567, "CLP"` -> `$1,234,567 CLP`.

    Integer arithmetic only: a float would round some centavos away.
    """
    exponent = MINOR_UNIT_EXPONENT.get(currency, DEFAULT_EXPONENT)
    units, minor = divmod(abs(amount_minor), 10**exponent)
    number = f"{units:,}" if exponent == 0 else f"{units:,}.{minor:0{exponent}d}"
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}{SYMBOL.get(currency, DEFAULT_SYMBOL)}{number} {currency}"

"""Exact money parsing: decimal text to integer minor units, per ISO-4217 exponent."""

from decimal import Decimal, InvalidOperation

# Minor-unit exponents of the currencies our tenants bill in (ISO-4217).
MINOR_UNIT_EXPONENT: dict[str, int] = {
    "ARS": 2,
    "BOB": 2,
    "BRL": 2,
    "CLP": 0,
    "COP": 2,
    "CRC": 2,
    "DOP": 2,
    "EUR": 2,
    "GTQ": 2,
    "HNL": 2,
    "MXN": 2,
    "NIO": 2,
    "PAB": 2,
    "PEN": 2,
    "PYG": 0,
    "USD": 2,
    "UYU": 2,
}


class AmountError(ValueError):
    pass


def to_minor_units(text: str, currency: str) -> int:
    """`"1234.56", "MXN"` -> 123456. Rejects more decimals than the currency has."""
    exponent = MINOR_UNIT_EXPONENT.get(currency)
    if exponent is None:
        raise AmountError(f"unsupported currency {currency!r}")
    try:
        amount = Decimal(text.strip())
    except InvalidOperation as exc:
        raise AmountError(f"{text!r} is not a decimal number") from exc
    if not amount.is_finite():
        raise AmountError(f"{text!r} is not a finite amount")
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise AmountError(f"{text!r} has more than {exponent} decimals for {currency}")
    return int(minor)

"""Money as people read it: integer minor units shown with the currency's own decimals."""

# ISO-4217 minor-unit exponents that are not 2. Of the currencies ingest accepts today only CLP and
# PYG have none; the others are here so a report in any ISO currency still reads right.
_EXPONENT_NOT_TWO: dict[str, int] = {
    "CLP": 0,
    "PYG": 0,
    "ISK": 0,
    "JPY": 0,
    "KRW": 0,
    "UYI": 0,
    "VND": 0,
    "XAF": 0,
    "XOF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "CLF": 4,
    "UYW": 4,
}


def currency_decimals(currency: str) -> int:
    """How many decimals `currency` is written with: `CLP` 0, `ARS` 2."""
    return _EXPONENT_NOT_TWO.get(currency.upper(), 2)


def format_money(amount_minor: int, currency: str) -> str:
    """`538694865, "ARS"` -> `"ARS 5,386,948.65"`; `1500, "CLP"` -> `"CLP 1,500"`.

    Integer arithmetic only, so no amount is ever rounded on its way to the screen.
    """
    decimals = currency_decimals(currency)
    sign = "-" if amount_minor < 0 else ""
    units, cents = divmod(abs(amount_minor), 10**decimals)
    text = f"{units:,}"
    if decimals:
        text += f".{cents:0{decimals}d}"
    return f"{currency.upper()} {sign}{text}"

"""Exact money parsing: amount text as a bank writes it, to integer minor units per ISO-4217.

No float ever takes part: the text is checked against a grammar, its digits are joined and read
as one integer. A thousands separator is only accepted where it groups thousands (`1.234.567,89`),
never elsewhere (`1.23,4` is refused), so a mistyped amount is rejected instead of misread.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# Minor-unit exponents of the currencies our tenants bill in (ISO-4217). Anything else is refused
# rather than guessed: the exponent decides what "1234" means.
MINOR_UNIT_EXPONENT: dict[str, int] = {
    "ARS": 2,
    "BOB": 2,
    "BRL": 2,
    "CAD": 2,
    "CLF": 4,  # Unidad de Fomento: Chilean loans are often denominated in it
    "CLP": 0,
    "COP": 2,
    "CRC": 2,
    "CUP": 2,
    "DOP": 2,
    "EUR": 2,
    "GBP": 2,
    "GTQ": 2,
    "HNL": 2,
    "HTG": 2,
    "JMD": 2,
    "JPY": 0,
    "MXN": 2,
    "NIO": 2,
    "PAB": 2,
    "PEN": 2,
    "PYG": 0,
    "USD": 2,
    "UYI": 0,
    "UYU": 2,
    "VES": 2,
}

# What a thousands separator may look like in the file, per declared separator: a "space" in a
# spreadsheet export is often a no-break space (U+00A0) or a narrow no-break space (U+202F).
SEPARATOR_VARIANTS: dict[str, tuple[str, ...]] = {
    ".": (".",),
    ",": (",",),
    " ": (" ", "\u00a0", "\u202f"),
    "'": ("'", "\u2019"),
}


class AmountError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AmountFormat:
    """How amounts are written in one source: decimal separator and optional thousands separator."""

    decimal_separator: str = "."
    thousands_separator: str | None = None

    def __post_init__(self) -> None:
        if self.decimal_separator not in (".", ","):
            raise ValueError("decimal separator must be '.' or ','")
        if self.thousands_separator == self.decimal_separator:
            raise ValueError("thousands separator must differ from the decimal separator")
        if self.thousands_separator is not None and (
            self.thousands_separator not in SEPARATOR_VARIANTS
        ):
            raise ValueError("thousands separator must be '.', ',', ' ' or \"'\"")


_SCALE = tuple(10**exponent for exponent in range(19))


class AmountReader:
    """Reads amount text in one `AmountFormat` as exact minor units. Built once per import."""

    __slots__ = ("_decimal", "_match", "_thousands", "format")

    def __init__(self, amount_format: AmountFormat) -> None:
        self.format = amount_format
        self._decimal = amount_format.decimal_separator
        variants = SEPARATOR_VARIANTS.get(amount_format.thousands_separator or "", ())
        self._thousands = variants
        decimal = re.escape(self._decimal)
        # [0-9], never \d: Python's \d also matches other scripts' digits. The integer part is
        # plain digits, or groups of three after the thousands separator (`1.234.567`), or
        # nothing before a decimal part (`,5`).
        whole = rf"[0-9]+|(?={decimal}[0-9])"
        if variants:
            group = "|".join(re.escape(variant) for variant in variants)
            whole = rf"[0-9]{{1,3}}(?:(?:{group})[0-9]{{3}})+|{whole}"
        self._match = re.compile(rf"([+-]?)({whole})(?:{decimal}([0-9]*))?").fullmatch

    def minor_units(self, text: str, exponent: int, currency: str) -> int:
        """`"1.234,56"` with exponent 2 -> 123456. Raises `AmountError` saying why not."""
        match = self._match(text)
        if match is None:
            raise AmountError(self._explain(text))
        sign, whole, fraction = match.groups()
        if self._thousands and not whole.isdigit():
            for variant in self._thousands:
                whole = whole.replace(variant, "")
        value: int
        if not fraction:
            value = int(whole) * _SCALE[exponent]
        elif len(fraction) <= exponent:
            value = int(whole + fraction) * _SCALE[exponent - len(fraction)]
        elif fraction[exponent:].strip("0"):
            raise AmountError(
                f"{text} has more than {exponent} decimals for {currency}"
                if exponent
                else f"{text} has decimals, but {currency} has no minor unit"
            )
        else:
            value = int(whole + fraction[:exponent] or "0")
        return -value if sign == "-" else value

    def canonical(self, text: str) -> str:
        """The number in plain form (`"1.234,5"` -> `"1234.5"`), for scores, not money."""
        match = self._match(text)
        if match is None:
            raise AmountError(self._explain(text))
        sign, whole, fraction = match.groups()
        for variant in self._thousands:
            whole = whole.replace(variant, "")
        whole = whole.lstrip("0") or "0"
        number = f"{whole}.{fraction}" if fraction else whole
        return f"-{number}" if sign == "-" and number.strip("0.") else number

    def _explain(self, text: str) -> str:
        if not text.strip():
            return "required value is empty"
        thousands = self.format.thousands_separator
        if thousands is not None and any(v in text for v in self._thousands):
            return (
                f"{text!r} is not an amount: {thousands!r} may only separate groups of three "
                f"digits, and decimals follow {self._decimal!r}"
            )
        if ({".", ","} - {self._decimal}) & set(text):
            return (
                f"{text!r} is not an amount: the decimal separator is {self._decimal!r} and "
                "this source declares no thousands separator"
                if thousands is None
                else f"{text!r} is not an amount: the decimal separator is {self._decimal!r}"
            )
        return f"{text!r} is not an amount"


_DEFAULT_READER = AmountReader(AmountFormat())


def to_minor_units(text: str, currency: str) -> int:
    """`"1234.56", "MXN"` -> 123456. Rejects more decimals than the currency has.

    Kept for callers of the generic CSV: a decimal point, no thousands separator. Import profiles
    use `AmountReader` with the source's own separators.
    """
    exponent = MINOR_UNIT_EXPONENT.get(currency)
    if exponent is None:
        raise AmountError(f"unsupported currency {currency!r}")
    stripped = text.strip()
    try:
        return _DEFAULT_READER.minor_units(stripped, exponent, currency)
    except AmountError:
        # Keep the former wording for what Decimal would have refused too.
        try:
            amount = Decimal(stripped)
        except InvalidOperation as exc:
            raise AmountError(f"{text!r} is not a decimal number") from exc
        if not amount.is_finite():
            raise AmountError(f"{text!r} is not a finite amount") from None
        raise

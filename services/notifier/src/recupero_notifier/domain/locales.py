"""The locales messages are written in, and money and dates as a reader of each writes them.

Pure (babel's CLDR data ships inside the package): `es-AR` reads `$12.345,67`, `en-US` reads
`$12,345.67`, and "5 de marzo de 2025" / "March 5, 2025" are the same day.
"""

from datetime import date
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, get_date_format
from babel.numbers import format_currency

from recupero_notifier.domain.money import (
    DEFAULT_EXPONENT,
    DEFAULT_SYMBOL,
    MINOR_UNIT_EXPONENT,
    SYMBOL,
)

# The locales Recupero ships templates for; a tenant may override any of them or a language.
LOCALES = ("es-MX", "es-AR", "es-CO", "es-PE", "es-CL", "en-US")
LANGUAGES = tuple(dict.fromkeys(locale.split("-")[0] for locale in LOCALES))
# What a debtor whose locale Recupero does not know reads.
DEFAULT_LOCALE = "es-MX"


class UnsupportedLocale(ValueError):
    """A template key that is neither a supported locale nor one of their languages."""


def language_of(locale: str) -> str:
    return locale.split("-")[0].lower()


def template_key(value: str) -> str:
    """A locale (`es-AR`) or language (`es`) a template may be stored under, in canonical case."""
    for key in (*LOCALES, *LANGUAGES):
        if value.lower() == key.lower():
            return key
    raise UnsupportedLocale(
        f"unsupported locale {value!r}; expected one of: {', '.join((*LOCALES, *LANGUAGES))}"
    )


def tenant_keys(locale: str) -> tuple[str, ...]:
    """Where a tenant's own template for `locale` is looked for: the locale, then its language."""
    return tuple(dict.fromkeys([locale, language_of(locale)]))


def lookup_order(locale: str) -> tuple[str, ...]:
    """Where a template for `locale` is looked for, most specific first: the locale, then its
    language, then the default locale and its language (a debtor in an unknown locale)."""
    keys = [locale, language_of(locale), DEFAULT_LOCALE, language_of(DEFAULT_LOCALE)]
    return tuple(dict.fromkeys(keys))


def _babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale, sep="-")
    except (ValueError, UnknownLocaleError):
        return Locale.parse(DEFAULT_LOCALE, sep="-")


def format_amount(amount_minor: int, currency: str, locale: str) -> str:
    """`1234567, "ARS", "es-AR"` -> `$12.345,67 ARS`: the locale's separators, symbol position
    and spacing, the symbol a Latin American reader expects, and the ISO code after it so no one
    wonders which dollar. Exact: the minor units are scaled as a Decimal, never a float."""
    babel_locale = _babel_locale(locale)
    exponent = MINOR_UNIT_EXPONENT.get(currency, DEFAULT_EXPONENT)
    amount = Decimal(amount_minor).scaleb(-exponent)
    symbol = SYMBOL.get(currency, DEFAULT_SYMBOL)
    # The locale's pattern with our symbol and exactly as many decimals as the minor units have.
    pattern = (
        babel_locale.currency_formats["standard"]
        .pattern.replace("¤", f"'{symbol}'")
        .replace("0.00", "0." + "0" * exponent if exponent else "0")
    )
    shown = format_currency(
        amount, currency, format=pattern, locale=babel_locale, currency_digits=False
    )
    return f"{shown} {currency}"


def format_short_date(value: date, locale: str) -> str:
    """The locale's short numeric date with the full year: a two-digit year on a debt notice is
    ambiguous (es-MX `05/03/2025`, es-AR `5/3/2025`, es-CL `05-03-2025`, en-US `3/5/2025`)."""
    babel_locale = _babel_locale(locale)
    pattern = get_date_format("short", locale=babel_locale).pattern.replace("yy", "y")
    return format_date(value, pattern, locale=babel_locale)


def format_long_date(value: date, locale: str) -> str:
    """`5 de marzo de 2025`, `March 5, 2025`."""
    return format_date(value, "long", locale=_babel_locale(locale))

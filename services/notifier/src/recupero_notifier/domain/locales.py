"""The locales messages are written in, and money and dates as a reader of each writes them.

Pure (babel's CLDR data ships inside the package): `es-AR` reads `$12.345,67`, `en-US` reads
`$12,345.67`, and "5 de marzo de 2025" / "March 5, 2025" are the same day.
"""

from datetime import date
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, get_date_format
from babel.numbers import NumberPattern, format_currency, parse_pattern

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


# Every message formats its amount and dates: parsing the locale and its patterns each time was
# most of a WhatsApp send's Python work. Locales, patterns and dates repeat; the caches are bounded.
@lru_cache(maxsize=64)
def _babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale, sep="-")
    except (ValueError, UnknownLocaleError):
        return Locale.parse(DEFAULT_LOCALE, sep="-")


def format_amount(amount_minor: int, currency: str, locale: str) -> str:
    """`1234567, "ARS", "es-AR"` -> `$12.345,67 ARS`: the locale's separators, symbol position
    and spacing, the symbol a Latin American reader expects, and the ISO code after it so no one
    wonders which dollar. Exact: the minor units are scaled as a Decimal, never a float."""
    exponent = MINOR_UNIT_EXPONENT.get(currency, DEFAULT_EXPONENT)
    amount = Decimal(amount_minor).scaleb(-exponent)
    shown = format_currency(
        amount,
        currency,
        format=_currency_pattern(currency, locale),
        locale=_babel_locale(locale),
        currency_digits=False,
    )
    return f"{shown} {currency}"


@lru_cache(maxsize=256)
def _currency_pattern(currency: str, locale: str) -> NumberPattern:
    """The locale's pattern with our symbol and exactly as many decimals as the minor units
    have."""
    exponent = MINOR_UNIT_EXPONENT.get(currency, DEFAULT_EXPONENT)
    symbol = SYMBOL.get(currency, DEFAULT_SYMBOL)
    return parse_pattern(
        _babel_locale(locale)
        .currency_formats["standard"]
        .pattern.replace("¤", f"'{symbol}'")
        .replace("0.00", "0." + "0" * exponent if exponent else "0")
    )


@lru_cache(maxsize=4096)
def format_short_date(value: date, locale: str) -> str:
    """The locale's short numeric date with the full year: a two-digit year on a debt notice is
    ambiguous (es-MX `05/03/2025`, es-AR `5/3/2025`, es-CL `05-03-2025`, en-US `3/5/2025`)."""
    babel_locale = _babel_locale(locale)
    pattern = get_date_format("short", locale=babel_locale).pattern.replace("yy", "y")
    return format_date(value, pattern, locale=babel_locale)


@lru_cache(maxsize=4096)
def format_long_date(value: date, locale: str) -> str:
    """`5 de marzo de 2025`, `March 5, 2025`."""
    return format_date(value, "long", locale=_babel_locale(locale))

"""Row validation: each source record becomes a `DocumentRow` or a `Rejection` that says why.

`RowParser(profile).parse(record)` is the hot loop of an import (a million rows in seconds), so:
- every check whose answer depends only on a cell's text (emails, phone numbers, dates,
  document-type codes, country/time zone/locale/currency) is computed once per distinct text and
  cached; a debtor's rows repeat their contact details and are usually adjacent;
- rows are NamedTuples: a frozen dataclass of 22 fields costs ~7 µs to build, a NamedTuple ~1 µs;
- money is read from text into integers, never through a float.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import NamedTuple, TypeVar

from recupero_events import DocumentKind
from recupero_ingest.domain.contacts import (
    COUNTRIES,
    COUNTRY_LOCALES,
    COUNTRY_TIME_ZONES,
    ContactError,
    normalize_email,
    normalize_phone,
)
from recupero_ingest.domain.money import (
    MINOR_UNIT_EXPONENT,
    AmountError,
    AmountFormat,
    AmountReader,
)
from recupero_ingest.domain.profiles import (
    ADDRESS_FIELDS,
    FIELDS,
    ImportProfile,
    document_code_key,
    is_time_zone,
    normalize_locale,
)
from recupero_ingest.domain.reading import SourceRecord

EMPTY = "required value is empty"
RISK_SCORE_RANGE = (Decimal(0), Decimal(1000))
_CACHE_LIMIT = 50_000
_FALLBACK_LOCALE = "es-419"  # Latin-American Spanish


class DocumentRow(NamedTuple):
    """A valid document row, normalised. Immutable (a NamedTuple: fast to build, no __dict__)."""

    row_number: int
    debtor_id: str
    name: str
    email: str | None
    phone: str | None
    country: str
    time_zone: str
    locale: str
    document_id: str
    kind: DocumentKind
    product: str | None
    issued_on: date | None
    due_on: date
    principal_minor: int
    interest_minor: int
    fees_minor: int
    amount_minor: int
    currency: str
    zone: str | None
    customer_type: str | None
    risk_score: str | None
    attributes: dict[str, str]
    # `recupero_events.PostalAddress` as JSON (the staged jsonb), when the row gives an address.
    postal_address: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a row was not imported: the canonical field, the cell's text and the reason."""

    row_number: int
    field: str
    value: str
    reason: str


class _Invalid(Exception):
    def __init__(self, field: str, value: str, reason: str) -> None:
        super().__init__(field, value, reason)
        self.field = field
        self.value = value
        self.reason = reason


class _Failure(str):
    """A cached negative answer: the reason."""

    __slots__ = ()


T = TypeVar("T")
_SCALE = tuple(10**exponent for exponent in range(19))
_CREDIT_NOTE = DocumentKind.CREDIT_NOTE
_new_row = tuple.__new__
_ADDRESS_START = FIELDS.index(ADDRESS_FIELDS[0])  # the address cells end the record
_WITH_ARTICLE = {
    DocumentKind.INVOICE: "an invoice",
    DocumentKind.INSTALLMENT: "an installment",
    DocumentKind.CREDIT_NOTE: "a credit note",
    DocumentKind.DEBIT_NOTE: "a debit note",
}


class _Problem(NamedTuple):
    """A cached rejection: field, value, reason."""

    field: str
    value: str
    reason: str


class _Place(NamedTuple):
    country: str
    time_zone: str
    locale: str
    currency: str
    exponent: int


# A row's place, email and phone, each checked (see `RowParser._check_contact`).
_CheckedContact = tuple[_Place | _Problem, str | _Failure | None, str | _Failure | None]


def _store(cache: dict[str, T], key: str, value: T) -> T:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()  # cheaper than LRU bookkeeping; a debtor's rows are adjacent anyway
    cache[key] = value
    return value


def format_minor(minor: int, exponent: int) -> str:
    """12345, 2 -> "123.45" (for messages)."""
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def address_json(
    street_lines: list[str], city: str, region: str, postal_code: str, country: str
) -> str:
    """`json.dumps` of the `PostalAddress` fields (not ASCII-escaped; "" is null), byte for
    byte, at a third of its cost: each debtor's address is a new one to write."""
    quoted = encode_basestring
    return (
        f'{{"street_lines": [{", ".join(map(quoted, street_lines))}], "city": {quoted(city)}, '
        f'"region": {quoted(region) if region else "null"}, '
        f'"postal_code": {quoted(postal_code) if postal_code else "null"}, '
        f'"country": {quoted(country)}}}'
    )


class RowParser:
    """Validates the records of one import against its profile. Not thread-safe (caches)."""

    def __init__(self, profile: ImportProfile) -> None:
        self.profile = profile
        self._amounts = AmountReader(
            AmountFormat(profile.decimal_separator, profile.thousands_separator)
        )
        formats = list(profile.date_formats)
        if profile.format == "xlsx" and "%Y-%m-%d" not in formats:
            formats.insert(0, "%Y-%m-%d")  # how the reader writes cells Excel holds as dates
        self._date_formats = tuple(formats)
        self._kinds = profile.document_kinds()
        self._fixed_kind = (
            profile.default_document_type if "document_type" not in profile.columns else None
        )
        self._attribute_names = tuple(profile.attributes)
        self._amount_field = "amount" if "amount" in profile.columns else "principal"
        self._amount_only = "amount" in profile.columns and not (
            {"principal", "interest", "fees"} & set(profile.columns)
        )
        separator = re.escape(profile.decimal_separator)
        self._plain_amount = re.compile(rf"([0-9]+)(?:{separator}([0-9]+))?").fullmatch
        defaults = profile.defaults
        self._default_country = defaults.country or ""
        self._default_currency = defaults.currency or ""
        self._default_time_zone = defaults.time_zone
        self._default_locale = defaults.locale
        self._phone_check = profile.phone_check
        self._places: dict[tuple[str, str, str, str], _Place | _Problem] = {}
        self._emails: dict[str, str | _Failure] = {}
        self._phones: dict[tuple[str, str], str | _Failure] = {}
        self._dates: dict[str, date | _Failure] = {}
        self._kind_cache: dict[str, DocumentKind | _Failure] = {}
        self._scores: dict[str, str | _Failure] = {}
        self._addresses: dict[tuple[str, ...], str | _Problem] = {}
        self._minor_units = self._amounts.minor_units
        self._contact: tuple[str, ...] = ()
        self._contact_checked: _CheckedContact = (_Problem("country", "", EMPTY), None, None)
        self._known_amounts: list[dict[str, int]] = [
            {} for _ in range(max(MINOR_UNIT_EXPONENT.values()) + 1)
        ]

    # --- the hot path ---------------------------------------------------------------------

    def parse(self, record: SourceRecord) -> DocumentRow | Rejection:
        """The record as a valid `DocumentRow`, or the `Rejection` of its first problem."""
        row_number = record[0]
        try:
            (
                debtor_id,
                name,
                email_text,
                phone_text,
                country_text,
                time_zone_text,
                locale_text,
                document_id,
                type_text,
                product,
                issued_text,
                due_text,
                amount_text,
                principal_text,
                interest_text,
                fees_text,
                currency_text,
                zone,
                customer_type,
                score_text,
                street_text,
                street_2_text,
                _,  # city, region, postal code, address country: read by `_postal_address`
                _,
                _,
                _,
            ) = record[1]
        except ValueError:
            return Rejection(row_number, "record", "", f"expected {len(FIELDS)} values")
        try:
            debtor_id = debtor_id.strip()
            if not debtor_id:
                raise _Invalid("debtor_id", debtor_id, EMPTY)
            name = name.strip()
            if not name:
                raise _Invalid("name", name, EMPTY)
            document_id = document_id.strip()
            if not document_id:
                raise _Invalid("document_id", document_id, EMPTY)

            # A debtor's rows repeat its contact cells and follow one another: comparing them
            # with the last row's costs less than hashing them for the caches again.
            contact = (
                country_text,
                time_zone_text,
                locale_text,
                currency_text,
                email_text,
                phone_text,
            )
            if contact != self._contact:
                self._contact = contact
                self._contact_checked = self._check_contact(*contact)
            place, email, phone = self._contact_checked
            if isinstance(place, _Problem):
                raise _Invalid(*place)  # a new exception each time: tracebacks must not pile up
            country, time_zone, locale, currency, exponent = place

            fixed_kind = self._fixed_kind
            if fixed_kind is None:
                found_kind = self._kind_cache.get(type_text)
                if found_kind is None:
                    found_kind = self._kind(type_text)
                if isinstance(found_kind, _Failure):
                    raise _Invalid("document_type", type_text, found_kind)
                kind: DocumentKind = found_kind
            else:
                kind = fixed_kind

            # The usual case first: a total amount, plain digits, no more decimals than the
            # currency has. Anything else (signs, separators, breakdowns) takes `_money`.
            match = self._plain_amount(amount_text) if self._amount_only else None
            if match is not None:
                whole, fraction = match.groups()
                if fraction is None:
                    amount = int(whole) * _SCALE[exponent]
                elif len(fraction) <= exponent:
                    amount = int(whole + fraction) * _SCALE[exponent - len(fraction)]
                else:
                    amount = self._minor("amount", amount_text, exponent, currency)
                if kind is _CREDIT_NOTE:
                    amount = -amount
                principal, interest, fees = amount, 0, 0
            else:
                principal, interest, fees, amount = self._money(
                    kind, amount_text, principal_text, interest_text, fees_text, exponent, currency
                )

            due_on = self._dates.get(due_text)
            if due_on is None:
                due_on = self._date(due_text)
            if isinstance(due_on, _Failure):
                raise _Invalid("due_on", due_text, due_on or EMPTY)
            issued_on = self._dates.get(issued_text) if issued_text else None
            if issued_on is None and issued_text:
                issued_on = self._date(issued_text)
            if isinstance(issued_on, _Failure):
                if issued_on:
                    raise _Invalid("issued_on", issued_text, issued_on)
                issued_on = None  # only spaces: as good as empty

            if isinstance(email, _Failure):
                if email:
                    raise _Invalid("email", email_text, email)
                email = None
            if isinstance(phone, _Failure):
                if phone:
                    raise _Invalid("phone", phone_text, phone)
                phone = None

            postal_address: str | _Problem | None = None
            if street_text or street_2_text:  # a street line: the row gives an address
                address_key = (*record[1][_ADDRESS_START:], country)
                postal_address = self._addresses.get(address_key)
                if postal_address is None:
                    postal_address = self._postal_address(address_key)
                if isinstance(postal_address, _Problem):
                    raise _Invalid(*postal_address)
                postal_address = postal_address or None  # only spaces: no street, no address

            attributes = record[2]
            return _new_row(
                DocumentRow,
                (
                    row_number,
                    debtor_id,
                    name,
                    email,
                    phone,
                    country,
                    time_zone,
                    locale,
                    document_id,
                    kind,
                    product.strip() or None,
                    issued_on,
                    due_on,
                    principal,
                    interest,
                    fees,
                    amount,
                    currency,
                    zone.strip() or None,
                    customer_type.strip() or None,
                    self._risk_score(score_text) if score_text else None,
                    self._attributes(attributes) if attributes else {},
                    postal_address,
                ),
            )
        except _Invalid as invalid:
            return Rejection(row_number, invalid.field, invalid.value, invalid.reason)

    # --- cache misses and the less common cases -------------------------------------------

    def _check_contact(
        self,
        country_text: str,
        time_zone_text: str,
        locale_text: str,
        currency_text: str,
        email_text: str,
        phone_text: str,
    ) -> _CheckedContact:
        """The place, email and phone of a row's contact cells, each a value, a `_Problem` or
        `_Failure` for `parse` to raise in its turn, or None for no email or phone."""
        place = self._places.get((country_text, time_zone_text, locale_text, currency_text))
        if place is None:
            place = self._place(country_text, time_zone_text, locale_text, currency_text)
        email = self._emails.get(email_text) if email_text else None
        if email is None and email_text:
            email = self._email(email_text)
        phone = None
        if phone_text and not isinstance(place, _Problem):
            country = place.country
            phone = self._phones.get((phone_text, country))
            if phone is None:
                phone = self._phone(phone_text, country)
        return place, email, phone

    def _postal_address(self, key: tuple[str, ...]) -> str | _Problem:
        """The address cells (`ADDRESS_FIELDS`, then the row's country) as `PostalAddress`
        JSON, or "" for no address. A street line makes an address: then it needs a city and a
        known country, or the row is rejected. Without one, the other cells are no address (a
        province or city column may also feed segmentation) and are ignored. The text itself is
        taken as given: each country writes its addresses its own way."""
        line_1, line_2, city, region, postal_code, country_text = (
            " ".join(text.split()) for text in key[:-1]
        )
        result: str | _Problem
        street_lines = [line for line in (line_1, line_2) if line]
        country = country_text.upper() or key[-1]
        if not street_lines:
            result = ""
        elif country not in COUNTRIES:
            result = _Problem(
                "address_country",
                key[5],
                f"{key[5]!r} is not an ISO-3166 alpha-2 country code (AR, MX, PE...)",
            )
        elif not city:
            result = _Problem(
                "city", key[2], "a postal address needs a city: the row gives a street but no city"
            )
        else:
            result = address_json(street_lines, city, region, postal_code, country)
        if len(self._addresses) >= _CACHE_LIMIT:
            self._addresses.clear()
        self._addresses[key] = result
        return result

    def _place(
        self, country_text: str, time_zone_text: str, locale_text: str, currency_text: str
    ) -> _Place | _Problem:
        key = (country_text, time_zone_text, locale_text, currency_text)
        try:
            result: _Place | _Problem = self._resolve_place(*key)
        except _Invalid as invalid:
            result = _Problem(invalid.field, invalid.value, invalid.reason)
        if len(self._places) >= _CACHE_LIMIT:
            self._places.clear()
        self._places[key] = result
        return result

    def _resolve_place(
        self, country_text: str, time_zone_text: str, locale_text: str, currency_text: str
    ) -> _Place:
        country = country_text.strip().upper() or self._default_country
        if not country:
            raise _Invalid("country", country_text, EMPTY)
        if country not in COUNTRIES:
            raise _Invalid(
                "country", country_text, f"{country_text!r} is not an ISO-3166 alpha-2 country code"
            )
        time_zone = time_zone_text.strip() or (
            self._default_time_zone or COUNTRY_TIME_ZONES.get(country, "")
        )
        if not time_zone:
            raise _Invalid(
                "time_zone",
                time_zone_text,
                f"{EMPTY}, and there is no default time zone for {country}",
            )
        if not is_time_zone(time_zone):
            raise _Invalid("time_zone", time_zone_text, f"{time_zone!r} is not an IANA time zone")
        if locale_text.strip():
            found_locale = normalize_locale(locale_text.strip())
            if found_locale is None:
                raise _Invalid(
                    "locale", locale_text, f"{locale_text!r} is not a locale tag such as es-PE"
                )
            locale = found_locale
        else:
            locale = self._default_locale or COUNTRY_LOCALES.get(country, _FALLBACK_LOCALE)
        currency = currency_text.strip().upper() or self._default_currency
        if not currency:
            raise _Invalid("currency", currency_text, EMPTY)
        exponent = MINOR_UNIT_EXPONENT.get(currency)
        if exponent is None:
            raise _Invalid("currency", currency_text, f"unsupported currency {currency_text!r}")
        return _Place(country, time_zone, locale, currency, exponent)

    def _kind(self, text: str) -> DocumentKind | _Failure:
        kind = self._kinds.get(document_code_key(text))
        if kind is not None:
            return _store(self._kind_cache, text, kind)
        if not text.strip():
            return _store(self._kind_cache, text, _Failure(EMPTY))
        expected = ", ".join(self.profile.document_types or self._kinds)
        return _store(
            self._kind_cache, text, _Failure(f"{text!r} is not a known document type ({expected})")
        )

    def _date(self, text: str) -> date | _Failure:
        stripped = text.strip()
        if not stripped:
            return _store(self._dates, text, _Failure(""))
        for fmt in self._date_formats:
            try:
                value = datetime.strptime(stripped, fmt).date()
            except ValueError:
                continue
            if not 1900 <= value.year < 2200:
                return _store(
                    self._dates,
                    text,
                    _Failure(f"{text!r} is not a plausible date (year {value.year})"),
                )
            return _store(self._dates, text, value)
        formats = self._date_formats
        which = (
            f"the format {formats[0]}"
            if len(formats) == 1
            else "any of the formats " + ", ".join(formats)
        )
        return _store(self._dates, text, _Failure(f"{text!r} is not a date in {which}"))

    def _email(self, text: str) -> str | _Failure:
        stripped = text.strip()
        if not stripped:
            return _store(self._emails, text, _Failure(""))
        try:
            return _store(self._emails, text, normalize_email(stripped))
        except ContactError as exc:
            return _store(self._emails, text, _Failure(str(exc)))

    def _phone(self, text: str, country: str) -> str | _Failure:
        key = (text, country)
        stripped = text.strip()
        if len(self._phones) >= _CACHE_LIMIT:
            self._phones.clear()
        if not stripped:
            result: str | _Failure = _Failure("")
        else:
            try:
                result = normalize_phone(stripped, country, self._phone_check)
            except ContactError as exc:
                result = _Failure(str(exc))
        self._phones[key] = result
        return result

    def _minor(self, field: str, text: str, exponent: int, currency: str) -> int | None:
        """The cell's amount in minor units; None when it is blank."""
        # Interest, fees and many a principal repeat: each text is read once per exponent.
        known = self._known_amounts[exponent]
        value = known.get(text)
        if value is None:
            value = self._read_minor(field, text, exponent, currency)
            if value is not None:
                _store(known, text, value)
        return value

    def _read_minor(self, field: str, text: str, exponent: int, currency: str) -> int | None:
        try:
            return self._minor_units(text, exponent, currency)
        except AmountError as exc:
            stripped = text.strip()
            if stripped == text:
                raise _Invalid(field, text, str(exc)) from None
        if not stripped:
            return None
        try:
            return self._minor_units(stripped, exponent, currency)
        except AmountError as exc:
            raise _Invalid(field, text, str(exc)) from None

    def _money(
        self,
        kind: DocumentKind,
        amount_text: str,
        principal_text: str,
        interest_text: str,
        fees_text: str,
        exponent: int,
        currency: str,
    ) -> tuple[int, int, int, int]:
        """(principal, interest, fees, amount) in minor units; credit notes negative."""
        minor = self._minor
        interest = (
            (minor("interest", interest_text, exponent, currency) or 0) if interest_text else 0
        )
        fees = (minor("fees", fees_text, exponent, currency) or 0) if fees_text else 0
        amount = minor("amount", amount_text, exponent, currency) if amount_text else None
        principal = (
            minor("principal", principal_text, exponent, currency) if principal_text else None
        )
        if principal is None and amount is None:
            field = self._amount_field
            raise _Invalid(field, amount_text if field == "amount" else principal_text, EMPTY)
        if kind is _CREDIT_NOTE:
            # Sources disagree on the sign of a credit note; it always reduces the balance.
            interest, fees = -abs(interest), -abs(fees)
            amount = -abs(amount) if amount is not None else None
            principal = -abs(principal) if principal is not None else None
        elif (
            interest < 0
            or fees < 0
            or (amount is not None and amount < 0)
            or (principal is not None and principal < 0)
        ):
            for field, text, value in (
                ("amount", amount_text, amount),
                ("principal", principal_text, principal),
                ("interest", interest_text, interest),
                ("fees", fees_text, fees),
            ):
                if value is not None and value < 0:
                    raise _Invalid(field, text, f"negative amount on {_WITH_ARTICLE[kind]}")
        if principal is None:
            assert amount is not None
            principal = amount - interest - fees
            if (principal < 0) != (amount < 0) and principal != 0:
                raise _Invalid(
                    "amount",
                    amount_text,
                    f"interest and fees ({format_minor(interest + fees, exponent)}) exceed "
                    f"the amount ({format_minor(amount, exponent)})",
                )
            return principal, interest, fees, amount
        total = principal + interest + fees
        if amount is not None and amount != total:
            raise _Invalid(
                "amount",
                amount_text,
                f"{amount_text.strip()} is not principal + interest + fees "
                f"({format_minor(abs(total), exponent)} {currency})",
            )
        return principal, interest, fees, total

    def _risk_score(self, text: str) -> str | None:
        score = self._scores.get(text)
        if score is None:
            score = _store(self._scores, text, self._read_score(text))
        if isinstance(score, _Failure):
            if score:
                raise _Invalid("risk_score", text, score)
            return None
        return score

    def _read_score(self, text: str) -> str | _Failure:
        stripped = text.strip()
        if not stripped:
            return _Failure("")
        try:
            score = self._amounts.canonical(stripped)
        except AmountError:
            return _Failure(f"{text!r} is not a number")
        low, high = RISK_SCORE_RANGE
        if not low <= Decimal(score) <= high:
            return _Failure(f"{text!r} is outside 0 to 1000")
        return score

    def _attributes(self, cells: object) -> dict[str, str]:
        if isinstance(cells, dict):
            return {str(key): text for key, value in cells.items() if (text := str(value).strip())}
        assert isinstance(cells, tuple)
        return {
            name: text
            for name, value in zip(self._attribute_names, cells, strict=False)
            if (text := value.strip())
        }


# --- the walking skeleton's API, kept until the import pipeline moves to RowParser ----------

_GENERIC: RowParser | None = None


def _generic_parser() -> RowParser:
    global _GENERIC
    if _GENERIC is None:
        from recupero_ingest.domain.profiles import shipped_profiles

        _GENERIC = RowParser(shipped_profiles()["generic-csv"])
    return _GENERIC


REQUIRED_COLUMNS = (
    "debtor_id",
    "name",
    "country",
    "time_zone",
    "document_id",
    "document_type",
    "due_on",
    "amount",
    "currency",
)
OPTIONAL_COLUMNS = ("email", "phone", "product", "issued_on", "locale")


def missing_columns(header: list[str]) -> list[str]:
    """Generic-CSV columns `header` lacks. Deprecated: `iter_records` checks headers."""
    return [column for column in REQUIRED_COLUMNS if column not in header]


def parse_row(row_number: int, row: dict[str, str]) -> DocumentRow | Rejection:
    """One generic-CSV row, by column name. Deprecated: use `RowParser(profile).parse`."""
    parser = _generic_parser()
    columns = parser.profile.columns
    values = tuple((row.get(columns[field]) or "") if field in columns else "" for field in FIELDS)
    return parser.parse(SourceRecord(row_number, values))

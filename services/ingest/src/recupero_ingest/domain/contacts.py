"""Contact details as a creditor's export gives them, normalised: countries, emails, phone numbers.

`email-validator` and `phonenumbers` are the references. Both are thorough and slow (about 70 µs
and 30-45 µs a call), too slow for a million rows, so each has a fast path here for the plain
inputs that make up nearly every real file:

- an ASCII dot-atom address on an LDH domain with an alphabetic TLD, which email-validator is
  known to accept unchanged but for lower-casing the domain;
- a number of digits (with spaces or dashes) for a country calling code that belongs to one
  region, checked against the same phonenumbers metadata with one precompiled pattern.

Anything else goes to the reference library. Property tests (tests/unit/test_ingest_properties.py)
check that each fast path gives exactly the reference's answer wherever it gives one at all.
"""

import re
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, NumberParseException, PhoneMetadata

PhoneCheck = Literal["valid", "possible", "format"]

# Default time zone and locale per country, for sources without those columns. A country with
# several time zones gets its most populated one; a profile can override both.
COUNTRY_TIME_ZONES: dict[str, str] = {
    "AR": "America/Argentina/Buenos_Aires",
    "BO": "America/La_Paz",
    "CL": "America/Santiago",
    "CO": "America/Bogota",
    "CR": "America/Costa_Rica",
    "DO": "America/Santo_Domingo",
    "EC": "America/Guayaquil",
    "ES": "Europe/Madrid",
    "GT": "America/Guatemala",
    "MX": "America/Mexico_City",
    "PA": "America/Panama",
    "PE": "America/Lima",
    "PY": "America/Asuncion",
    "US": "America/New_York",
    "UY": "America/Montevideo",
}
COUNTRY_LOCALES: dict[str, str] = {
    country: f"es-{country}" for country in COUNTRY_TIME_ZONES if country != "US"
} | {"US": "en-US"}

# ISO-3166 alpha-2 codes phonenumbers knows (every assigned country and territory that has a
# telephone numbering plan, which is every one a debtor can live in).
COUNTRIES: frozenset[str] = frozenset(phonenumbers.SUPPORTED_REGIONS)

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class ContactError(ValueError):
    """The value cannot be used; the message says why, quoting the value."""


# --- email ----------------------------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_PLAIN_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_PLAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ALPHABETIC_TLD = re.compile(r"[a-z]{2,63}")
# Mailbox names email-validator lower-cases (RFC 2142: info@, sales@...).
_CASE_INSENSITIVE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_LONGEST_MAILBOX = max(map(len, _CASE_INSENSITIVE_MAILBOXES))
# Domains repeat across a portfolio (a few mail providers): each is checked once.
_PLAIN_DOMAINS: dict[str, str] = {}


def _plain_domain(domain: str) -> str:
    """The lower-cased domain if email-validator accepts it as is, else ""."""
    lowered = domain.lower()
    if (
        len(domain) > 253
        or not domain.isascii()
        or "--" in domain  # Punycode (xn--) and R-LDH labels need IDNA checks
    ):
        return ""
    labels = lowered.split(".")
    if len(labels) < 2 or _ALPHABETIC_TLD.fullmatch(labels[-1]) is None:
        return ""
    # Special-use names (test, local, onion...) and their subdomains: as email-validator does.
    if any(lowered == name or lowered.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES):
        return ""
    if any(_PLAIN_LABEL.fullmatch(label) is None for label in labels):
        return ""
    return lowered


def fast_email(text: str) -> str | None:
    """The normalised address when `text` is a plain ASCII address email-validator accepts as
    is (but for lower-casing the domain); None when only email-validator can tell."""
    at = text.find("@")
    if not 0 < at <= 64 or len(text) > 254 or _PLAIN_LOCAL.fullmatch(text, 0, at) is None:
        return None
    domain = text[at + 1 :]
    plain = _PLAIN_DOMAINS.get(domain)
    if plain is None:
        if len(_PLAIN_DOMAINS) >= 10_000:
            _PLAIN_DOMAINS.clear()
        plain = _PLAIN_DOMAINS[domain] = _plain_domain(domain)
    if not plain:
        return None
    local = text[:at]
    if len(local) <= _LONGEST_MAILBOX and local.lower() in _CASE_INSENSITIVE_MAILBOXES:
        local = local.lower()
    return f"{local}@{plain}"


def normalize_email(text: str) -> str:
    """The address as email-validator normalises it (no DNS check); `ContactError` otherwise."""
    fast = fast_email(text)
    if fast is not None:
        return fast
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ContactError(f"{text!r} is not a valid email address: {exc}") from None


# --- phone numbers --------------------------------------------------------------------------

_DIGITS_WITH_SEPARATORS = re.compile(r"\+?[0-9]+(?:[ -][0-9]+)*")
_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _lengths_lookahead(lengths: tuple[int, ...]) -> str:
    return "(?=(?:" + "|".join(f"[0-9]{{{n}}}" for n in lengths) + r")\Z)"


@dataclass(frozen=True, slots=True)
class _NumberingPlan:
    """One region's phonenumbers metadata, precompiled for the fast path."""

    country_code: int
    calling_code: str
    region: str
    shares_calling_code: bool  # +1 (US, CA, DO...), +7, +44...: phonenumbers picks the region
    international_prefix: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None
    transform_rule: str | None
    general: re.Pattern[str] | None
    possible_lengths: tuple[int, ...]
    local_lengths: tuple[int, ...]
    valid: re.Pattern[str]

    @classmethod
    def build(cls, region: str) -> "_NumberingPlan | None":
        metadata = PhoneMetadata.metadata_for_region(region, None)
        if metadata is None or metadata.general_desc is None or metadata.country_code is None:
            return None
        general_desc = metadata.general_desc
        if not general_desc.national_number_pattern or not general_desc.possible_length:
            return None
        alternatives = []
        for name in _TYPE_DESCS:
            desc = getattr(metadata, name)
            if desc is None or not desc.national_number_pattern:
                continue
            lengths = tuple(desc.possible_length)
            if lengths and min(lengths) < 1:
                continue  # phonenumbers' marker for "no numbers of this type"
            lookahead = _lengths_lookahead(lengths) if lengths else ""
            alternatives.append(f"{lookahead}(?:{desc.national_number_pattern})")
        general = (
            f"{_lengths_lookahead(tuple(general_desc.possible_length))}"
            f"(?=(?:{general_desc.national_number_pattern})\\Z)"
        )
        types = "|".join(alternatives) or "(?!)"
        prefix = metadata.national_prefix_for_parsing
        international = metadata.international_prefix
        return cls(
            country_code=metadata.country_code,
            calling_code=str(metadata.country_code),
            region=region,
            shares_calling_code=len(COUNTRY_CODE_TO_REGION_CODE.get(metadata.country_code, ()))
            != 1,
            international_prefix=re.compile(international) if international else None,
            national_prefix=re.compile(prefix) if prefix else None,
            transform_rule=metadata.national_prefix_transform_rule or None,
            general=re.compile(general_desc.national_number_pattern),
            possible_lengths=tuple(general_desc.possible_length),
            local_lengths=tuple(general_desc.possible_length_local_only or ()),
            valid=re.compile(f"{general}(?:{types})"),
        )

    def _viable(self, number: str) -> bool:
        return self.general is not None and self.general.fullmatch(number) is not None

    def _length_result(self, number: str) -> str:
        # phonenumbers' _test_number_length for an unknown number type.
        length = len(number)
        if length in self.local_lengths:
            return "local_only"
        lengths = self.possible_lengths
        if lengths[0] == length:
            return "possible"
        if lengths[0] > length:
            return "too_short"
        if lengths[-1] < length:
            return "too_long"
        return "possible" if length in lengths[1:] else "invalid_length"

    def national_significant_number(self, number: str) -> str:
        """Strips a national prefix as phonenumbers.parse does, when the rest stays plausible."""
        if self.national_prefix is None or not number:
            return number
        match = self.national_prefix.match(number)
        if match is None:
            return number
        viable_before = self._viable(number)
        groups = match.groups()
        if self.transform_rule is None or not groups or groups[-1] is None:
            stripped = number[match.end() :]
        else:
            stripped = self.national_prefix.sub(self.transform_rule, number, count=1)
        if viable_before and not self._viable(stripped):
            return number
        if self._length_result(stripped) in ("too_short", "local_only", "invalid_length"):
            return number
        return stripped

    def accepts(self, number: str, check: PhoneCheck) -> bool:
        if check == "valid":
            return self.valid.fullmatch(number) is not None
        if check == "possible":
            return self._length_result(number) in ("possible", "local_only")
        return True


_PLANS: dict[str, _NumberingPlan | None] = {}


def _plan(region: str) -> _NumberingPlan | None:
    try:
        return _PLANS[region]
    except KeyError:
        plan = _PLANS[region] = _NumberingPlan.build(region)
        return plan


def _single_region_plan(country_code: int) -> _NumberingPlan | None:
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None or len(regions) != 1 or regions[0] == "001":
        return None
    return _plan(regions[0])


# Country calling codes as written after the plus; phonenumbers reads the shortest that exists.
_CALLING_CODES: dict[str, int] = {str(code): code for code in COUNTRY_CODE_TO_REGION_CODE}
# The calling code is read from the first three digits: a thousand keys at most.
_PLANS_AFTER_PLUS: dict[str, tuple[_NumberingPlan | None, int]] = {}


def _plan_after_plus(digits: str) -> tuple[_NumberingPlan | None, int]:
    """The numbering plan of the calling code `digits` start with (None where that code is
    shared or unknown), and the code's length (0 for no code)."""
    first_digits = digits[:3]
    found = _PLANS_AFTER_PLUS.get(first_digits)
    if found is None:
        found = _PLANS_AFTER_PLUS[first_digits] = _read_calling_code(first_digits)
    return found


def _read_calling_code(digits: str) -> tuple[_NumberingPlan | None, int]:
    for size in (1, 2, 3):
        prefix = digits[:size]
        if prefix in _CALLING_CODES:
            return _single_region_plan(_CALLING_CODES[prefix]), size
    return None, 0


def _invalid_phone(text: str, region: str) -> str:
    return f"{text!r} is not a valid phone number for {region}"


def _impossible_phone(text: str, region: str) -> str:
    return f"{text!r} does not have the length of a phone number of {region}"


def _not_e164(text: str) -> str:
    return f"{text!r} does not make an E.164 phone number (+ and 7 to 15 digits)"


def fast_phone(text: str, region: str, check: PhoneCheck) -> tuple[bool, str] | None:
    """(True, E.164) or (False, reason) when the fast path can tell; None when only
    phonenumbers can."""
    if text[1:].isdigit() and text.isascii() and (text[0] == "+" or text[0].isdigit()):
        digits = text  # the usual case: +5215512345678 or 5512345678
    elif len(text) <= 40 and _DIGITS_WITH_SEPARATORS.fullmatch(text) is not None:
        digits = text.replace(" ", "").replace("-", "")
    else:
        return None
    if not 8 <= len(digits) <= 40:
        return None  # short inputs have corner cases (too short, not a number): ask phonenumbers
    if digits[0] == "+":
        digits = digits[1:]
        if digits[0] == "0":
            return None
        plan, size = _plan_after_plus(digits)
        if plan is None:
            return None
        national = digits[size:]
    else:
        home = _plan(region) if region in COUNTRIES else None
        if home is None or home.shares_calling_code:
            return None
        if home.international_prefix is None or home.international_prefix.match(digits):
            return None  # dialled with an international prefix (00, 011...)
        if digits.startswith(home.calling_code):
            return None  # might carry the country code without the plus
        plan = home
        national = digits
    if len(national) < 2:
        return None
    national = plan.national_significant_number(national)
    if len(national) > 17 or national[0] == "0":
        return None  # too long to parse, or Italian-style leading zeros
    if not plan.accepts(national, check):
        reason = _invalid_phone if check == "valid" else _impossible_phone
        return False, reason(text, plan.region)
    e164 = f"+{plan.calling_code}{national}"
    if not 8 <= len(e164) <= 16:  # the E.164 shape: + and 7 to 15 digits, the first not 0
        return False, _not_e164(text)
    return True, e164


def reference_phone(text: str, region: str, check: PhoneCheck) -> tuple[bool, str]:
    """What phonenumbers itself says: (True, E.164) or (False, reason)."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return False, f"{text!r} is not a phone number ({_parse_error(exc)})"
    number_region = phonenumbers.region_code_for_number(number) or region
    if check == "valid" and not phonenumbers.is_valid_number(number):
        return False, _invalid_phone(text, number_region)
    if check == "possible" and not phonenumbers.is_possible_number(number):
        return False, _impossible_phone(text, number_region)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if _E164.fullmatch(e164) is None:
        return False, _not_e164(text)
    return True, e164


def _parse_error(exc: NumberParseException) -> str:
    return {
        NumberParseException.INVALID_COUNTRY_CODE: "unknown country calling code",
        NumberParseException.NOT_A_NUMBER: "not a number",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        NumberParseException.TOO_SHORT_NSN: "too short",
        NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "unreadable")


def normalize_phone(text: str, region: str, check: PhoneCheck = "valid") -> str:
    """E.164 form of `text` read as dialled from `region`; `ContactError` otherwise.

    `check` is how strict to be: `valid` (the number fits the numbering plan), `possible` (it has
    a possible length) or `format` (it only has to make an E.164 number).
    """
    result = fast_phone(text, region, check)
    if result is None:
        result = reference_phone(text, region, check)
    accepted, value = result
    if not accepted:
        raise ContactError(value)
    return value

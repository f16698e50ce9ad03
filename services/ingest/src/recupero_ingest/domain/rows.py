"""Row validation for the generic portfolio CSV: each row is either a document or a rejection."""

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from recupero_events import DocumentKind
from recupero_ingest.domain.money import AmountError, to_minor_units

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

DOCUMENT_TYPES = {
    "invoice": DocumentKind.INVOICE,
    "installment": DocumentKind.INSTALLMENT,
    "credit_note": DocumentKind.CREDIT_NOTE,
    "debit_note": DocumentKind.DEBIT_NOTE,
}


@dataclass(frozen=True, slots=True)
class DocumentRow:
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
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Rejection:
    row_number: int
    field: str
    value: str
    reason: str


class _Invalid(Exception):
    def __init__(self, field: str, value: str, reason: str) -> None:
        self.rejection = (field, value, reason)


def missing_columns(header: list[str]) -> list[str]:
    return [column for column in REQUIRED_COLUMNS if column not in header]


def _required(row: dict[str, str], field: str) -> str:
    value = (row.get(field) or "").strip()
    if not value:
        raise _Invalid(field, value, "required value is empty")
    return value


def _optional(row: dict[str, str], field: str) -> str | None:
    return (row.get(field) or "").strip() or None


def _date(field: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _Invalid(field, value, "not a date in YYYY-MM-DD form") from exc


def parse_row(row_number: int, row: dict[str, str]) -> DocumentRow | Rejection:
    try:
        currency = _required(row, "currency").upper()
        amount_text = _required(row, "amount")
        try:
            amount_minor = to_minor_units(amount_text, currency)
        except AmountError as exc:
            field = "currency" if "currency" in str(exc) else "amount"
            raise _Invalid(
                field, currency if field == "currency" else amount_text, str(exc)
            ) from exc
        document_type = _required(row, "document_type").lower()
        kind = DOCUMENT_TYPES.get(document_type)
        if kind is None:
            raise _Invalid(
                "document_type", document_type, f"expected one of {', '.join(DOCUMENT_TYPES)}"
            )
        if kind is DocumentKind.CREDIT_NOTE:
            amount_minor = -abs(amount_minor)
        elif amount_minor < 0:
            raise _Invalid("amount", amount_text, "negative amount on a non-credit document")
        country = _required(row, "country").upper()
        if len(country) != 2 or not country.isalpha():
            raise _Invalid("country", country, "not an ISO-3166 alpha-2 country code")
        time_zone = _required(row, "time_zone")
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise _Invalid("time_zone", time_zone, "unknown IANA time zone") from exc
        email = _optional(row, "email")
        if email is not None:
            try:
                email = validate_email(email, check_deliverability=False).normalized
            except EmailNotValidError as exc:
                raise _Invalid("email", email, f"not a valid email address: {exc}") from exc
        phone = _optional(row, "phone")
        if phone is not None:
            digits = phone.replace(" ", "").replace("-", "")
            if not (digits.startswith("+") and digits[1:].isdigit() and 8 <= len(digits) <= 16):
                raise _Invalid("phone", phone, "not an E.164 phone number (+ and 7-15 digits)")
            phone = digits
        issued_text = _optional(row, "issued_on")
        return DocumentRow(
            row_number=row_number,
            debtor_id=_required(row, "debtor_id"),
            name=_required(row, "name"),
            email=email,
            phone=phone,
            country=country,
            time_zone=time_zone,
            locale=_optional(row, "locale") or "es-MX",
            document_id=_required(row, "document_id"),
            kind=kind,
            product=_optional(row, "product"),
            issued_on=_date("issued_on", issued_text) if issued_text else None,
            due_on=_date("due_on", _required(row, "due_on")),
            amount_minor=amount_minor,
            currency=currency,
        )
    except _Invalid as invalid:
        field, value, reason = invalid.rejection
        return Rejection(row_number=row_number, field=field, value=value, reason=reason)

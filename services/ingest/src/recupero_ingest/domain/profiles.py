"""Import profiles: how a tenant describes one source (a bank's export) once, as data.

A profile says how to read the file (CSV or XLSX, encoding, delimiter, number and date formats),
which of the source's own columns holds each canonical field, what its document-type codes mean
and which defaults apply. Tenants write profiles in YAML or JSON; `load_profile` validates them
and says where and why a document is wrong (`columns.due_on: required`). docs/import-profiles.md
is the guide for integration teams.
"""

import codecs
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from importlib import resources
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from recupero_events import DocumentKind
from recupero_ingest.domain.contacts import COUNTRIES, COUNTRY_TIME_ZONES, PhoneCheck
from recupero_ingest.domain.money import MINOR_UNIT_EXPONENT

# The canonical fields a source can feed, in the order of `SourceRecord.values`.
CANONICAL_FIELDS: dict[str, str] = {
    "debtor_id": "The creditor's identifier of the debtor (customer number, tax id). Required.",
    "name": "Debtor's full name. Required.",
    "email": "Email address; checked and normalised (no DNS lookup).",
    "phone": "Phone number, national or international; normalised to E.164 by the row's country.",
    "country": "ISO-3166 alpha-2 country of the debtor (MX, PE...); `defaults.country` if absent.",
    "time_zone": "IANA time zone of the debtor; if absent, `defaults.time_zone` or the country's.",
    "locale": "BCP-47 locale for messages (es-PE); if absent, `defaults.locale` or the country's.",
    "document_id": "The creditor's identifier of the document (invoice, installment). Required.",
    "document_type": "The source's code for the document's kind, translated by `document_types`.",
    "product": "Product line (loan, card, service...).",
    "issued_on": "Issue date, in one of `date_formats`.",
    "due_on": "Due date, in one of `date_formats`. Required.",
    "amount": "Total owed on the document. Required unless `principal` is mapped.",
    "principal": "Principal (capital) owed. Required unless `amount` is mapped.",
    "interest": "Interest owed; part of the total.",
    "fees": "Fees and charges owed; part of the total.",
    "currency": "ISO-4217 currency of the amounts; `defaults.currency` if absent.",
    "zone": "Zone or branch (sucursal), for segmentation.",
    "customer_type": "Customer type or segment at the creditor, for segmentation.",
    "risk_score": "Creditor's risk score, a number from 0 to 1000, for segmentation.",
    "address_line_1": "Postal address for letters: street and number (direccion, calle).",
    "address_line_2": "Postal address: a second street line (floor, flat, colonia, barrio).",
    "city": "Postal address: city or locality (ciudad, localidad, municipio).",
    "region": "Postal address: state, province or department (estado, provincia, departamento).",
    "postal_code": "Postal address: postal code as the country writes it (codigo_postal, CP).",
    "address_country": "Postal address: ISO-3166 alpha-2 country; the debtor's `country` if absent.",
}
FIELDS: tuple[str, ...] = tuple(CANONICAL_FIELDS)
# The postal address's fields: the last ones of `FIELDS`, in this order.
ADDRESS_FIELDS = (
    "address_line_1",
    "address_line_2",
    "city",
    "region",
    "postal_code",
    "address_country",
)
REQUIRED_FIELDS = ("debtor_id", "name", "document_id", "due_on")
# Mapped columns a file may leave out only when the profile lists them in `optional_columns`.
OPTIONAL_FIELDS = frozenset(FIELDS) - set(REQUIRED_FIELDS)

THOUSANDS_WORDS = {"none": None, "space": " ", "apostrophe": "'"}
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_](?:[A-Za-z]{4}))?(?:[-_](?:[A-Za-z]{2}|[0-9]{3}))?")
_PROFILE_NAME = r"^[a-z0-9][a-z0-9_-]*$"
_DATE_SAMPLES = (date(2031, 1, 5), date(1999, 12, 28))
_CSV_ONLY = {"encoding": "auto", "delimiter": "auto", "quotechar": '"'}


def header_key(text: str) -> str:
    """How headers are compared: case, accents, surrounding and repeated spaces do not count."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\ufeff", ""))
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(plain.casefold().split())


def document_code_key(text: str) -> str:
    """How document-type codes are compared: case and surrounding spaces do not count."""
    return text.strip().casefold()


def normalize_locale(text: str) -> str | None:
    """`es_pe` -> `es-PE`; None when it is not a locale tag."""
    if _LOCALE.fullmatch(text) is None:
        return None
    parts = text.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.title() if len(part) == 4 else part.upper())
    return "-".join(out)


def is_time_zone(name: str) -> bool:
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _text(value: Any, what: str) -> str:
    """YAML turns `NO` into False and `2024` into 2024: accept numbers, refuse booleans."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} {value!r} is not text; put it in quotes")
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text")
    return value


class ProfileDefaults(BaseModel):
    """Values used when the source has no column for them, or the cell is empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str | None = Field(
        default=None,
        description="ISO-3166 alpha-2 country for rows without one.",
        examples=["PE"],
    )
    currency: str | None = Field(
        default=None, description="ISO-4217 currency for rows without one.", examples=["PEN"]
    )
    time_zone: str | None = Field(
        default=None,
        description="IANA time zone for rows without one; if unset, the country's own "
        "(a table covers MX, AR, CO, PE, CL, EC, UY, PY, BO, PA, CR, GT, DO, US and ES).",
        examples=["America/Lima"],
    )
    locale: str | None = Field(
        default=None,
        description="BCP-47 locale for rows without one; if unset, the country's (es-PE...).",
        examples=["es-PE"],
    )

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if code not in COUNTRIES:
            raise ValueError(f"{value!r} is not an ISO-3166 alpha-2 country code")
        return code

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if code not in MINOR_UNIT_EXPONENT:
            raise ValueError(f"{value!r} is not a supported ISO-4217 currency")
        return code

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str | None) -> str | None:
        if value is not None and not is_time_zone(value):
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is None:
            return None
        locale = normalize_locale(value)
        if locale is None:
            raise ValueError(f"{value!r} is not a locale tag such as es-PE")
        return locale


class ImportProfile(BaseModel):
    """How to read one source's files: format, columns, codes and defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=_PROFILE_NAME,
        description="Short name the import refers to (`--profile banco-andino`); lowercase slug.",
        examples=["banco-andino"],
    )
    description: str = Field(default="", description="What the source is, for people.")
    format: Literal["csv", "xlsx"] = Field(
        default="csv", description="`csv` (any delimited text file) or `xlsx` (Excel workbook)."
    )
    encoding: str = Field(
        default="auto",
        description="CSV text encoding: `auto` (a byte-order mark decides, else UTF-8 if the "
        "bytes are valid UTF-8, else Windows-1252/Latin-1) or any Python codec name "
        "(`latin-1`, `cp1252`, `utf-8`...).",
        examples=["auto", "latin-1"],
    )
    delimiter: str = Field(
        default="auto",
        description="CSV field delimiter: `auto` (whichever of `,` `;` `|` and tab splits the "
        "header line best), `tab`, or the character itself.",
        examples=[";"],
    )
    quotechar: str = Field(
        default='"', description="CSV quote character around fields holding the delimiter."
    )
    sheet: str | int | None = Field(
        default=None,
        description="XLSX worksheet: its name, or its position counting from 1. Default: the "
        "first sheet.",
        examples=["Deuda", 1],
    )
    header_row: int = Field(
        default=1,
        ge=1,
        description="Row holding the column headers, as the spreadsheet numbers it (rows above "
        "it, such as titles, are skipped).",
    )
    decimal_separator: Literal[".", ","] = Field(
        default=".", description="Decimal separator of amounts: `.` or `,`."
    )
    thousands_separator: Literal[".", ",", " ", "'"] | None = Field(
        default=None,
        description="Thousands separator of amounts, if the source uses one: `.`, `,`, a space "
        "(also no-break spaces) or an apostrophe; null for none. It is accepted only between "
        "groups of three digits.",
    )
    date_formats: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%d"],
        min_length=1,
        description="Date formats (Python strptime) tried in order, e.g. `%d/%m/%Y`. In XLSX "
        "files, cells Excel holds as dates are read as dates directly.",
        examples=[["%d/%m/%Y", "%Y-%m-%d"]],
    )
    columns: dict[str, str] = Field(
        description="Canonical field -> the source's header text for it. Headers match "
        "ignoring case, accents and extra spaces.",
        examples=[{"debtor_id": "NRO_CLIENTE", "due_on": "FECHA_VENCIMIENTO"}],
    )
    optional_columns: list[str] = Field(
        default_factory=list,
        description="Canonical fields whose column a file may leave out. Every other mapped "
        "column must be in the header, so a renamed column stops the import instead of "
        "silently emptying a field.",
    )
    attributes: list[str] = Field(
        default_factory=list,
        description="More source headers to keep, as custom attributes for segmentation.",
        examples=[["CANAL_PREFERIDO"]],
    )
    document_types: dict[str, DocumentKind] = Field(
        default_factory=dict,
        description="The source's document-type code -> kind (`invoice`, `installment`, "
        "`credit_note`, `debit_note`); codes match ignoring case. Empty: the kinds' own names.",
        examples=[{"FC": "invoice", "NC": "credit_note", "ND": "debit_note"}],
    )
    default_document_type: DocumentKind | None = Field(
        default=None,
        description="Kind of every document when the source has no document-type column.",
    )
    defaults: ProfileDefaults = Field(
        default_factory=ProfileDefaults,
        description="Country, currency, time zone and locale for rows that do not say.",
    )
    phone_check: PhoneCheck = Field(
        default="valid",
        description="How strictly phone numbers are checked: `valid` (fits the country's "
        "numbering plan), `possible` (has a possible length) or `format` (only makes an E.164 "
        "number). A number that fails rejects the row.",
    )

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            info = codecs.lookup(value)
        except LookupError:
            raise ValueError(f"{value!r} is not a text encoding Python knows") from None
        if not getattr(info, "_is_text_encoding", True):
            raise ValueError(f"{value!r} is not a text encoding")
        return value

    @field_validator("delimiter", mode="before")
    @classmethod
    def _delimiter(cls, value: Any) -> Any:
        if value == "auto":
            return value
        if value in ("tab", "\\t"):
            return "\t"
        if not isinstance(value, str) or len(value) != 1:
            raise ValueError("must be `auto`, `tab` or a single character")
        if value in ("\r", "\n", '"') or value.isalnum():
            raise ValueError(f"{value!r} cannot separate fields")
        return value

    @field_validator("quotechar")
    @classmethod
    def _quotechar(cls, value: str) -> str:
        if len(value) != 1 or value in ("\r", "\n") or value.isalnum():
            raise ValueError("must be a single punctuation character")
        return value

    @field_validator("thousands_separator", mode="before")
    @classmethod
    def _thousands_words(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in THOUSANDS_WORDS:
            return THOUSANDS_WORDS[value.strip().lower()]
        return value

    @field_validator("date_formats")
    @classmethod
    def _date_formats(cls, formats: list[str]) -> list[str]:
        problems = []
        for index, fmt in enumerate(formats):
            for sample in _DATE_SAMPLES:
                try:
                    read_back = datetime.strptime(sample.strftime(fmt), fmt).date()
                except ValueError:
                    read_back = None
                if read_back != sample:
                    problems.append(
                        f"[{index}]: {fmt!r} does not read a whole date (day, month and year), "
                        "as %d/%m/%Y does"
                    )
                    break
        if problems:
            raise ValueError("\n".join(problems))
        return formats

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError("must map canonical fields to the source's headers")
        columns: dict[str, str] = {}
        problems = []
        for key, header in value.items():
            if key not in CANONICAL_FIELDS:
                problems.append(
                    f".{key}: unknown field; canonical fields are {', '.join(CANONICAL_FIELDS)}"
                )
                continue
            try:
                text = _text(header, "header")
            except ValueError as exc:
                problems.append(f".{key}: {exc}")
                continue
            if not text.strip():
                problems.append(f".{key}: header text is empty")
                continue
            columns[key] = text
        if problems:
            raise ValueError("\n".join(problems))
        return columns

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        headers = [_text(item, "header") for item in value]
        seen: set[str] = set()
        for header in headers:
            if not header.strip():
                raise ValueError("a header text is empty")
            if header_key(header) in seen:
                raise ValueError(f"{header!r} is listed twice")
            seen.add(header_key(header))
        return headers

    @field_validator("document_types", mode="before")
    @classmethod
    def _document_types(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        kinds = {kind.value for kind in DocumentKind}
        out: dict[str, str] = {}
        seen: dict[str, str] = {}
        problems = []
        for code, kind in value.items():
            try:
                text = _text(code, "code")
            except ValueError as exc:
                problems.append(f": {exc}")
                continue
            if kind not in kinds:
                problems.append(
                    f".{text}: unknown document kind {kind!r}; expected one of "
                    f"{', '.join(sorted(kinds))}"
                )
                continue
            key = document_code_key(text)
            if not key:
                problems.append(": a code is empty")
            elif key in seen:
                problems.append(f".{text}: same code as {seen[key]!r} (case does not count)")
            else:
                seen[key] = text
                out[text] = kind
        if problems:
            raise ValueError("\n".join(problems))
        return out

    @model_validator(mode="after")
    def _consistent(self) -> "ImportProfile":
        problems: list[str] = []
        columns = self.columns
        for required in REQUIRED_FIELDS:
            if required not in columns:
                problems.append(f"columns.{required}: required")
        if "amount" not in columns and "principal" not in columns:
            problems.append(
                "columns.amount: required (or columns.principal, with optional interest and fees)"
            )
        if self.thousands_separator == self.decimal_separator:
            problems.append("thousands_separator: must differ from decimal_separator")
        for index, field in enumerate(self.optional_columns):
            if field not in OPTIONAL_FIELDS:
                reason = "is a required field" if field in FIELDS else "is not a canonical field"
                problems.append(f"optional_columns[{index}]: {field!r} {reason}")
            elif field not in columns:
                problems.append(f"optional_columns[{index}]: {field!r} is not in columns")
        if "document_type" not in columns and self.default_document_type is None:
            problems.append(
                "default_document_type: required when columns.document_type is not mapped"
            )
        if "country" not in columns and self.defaults.country is None:
            problems.append("defaults.country: required when columns.country is not mapped")
        if "currency" not in columns and self.defaults.currency is None:
            problems.append("defaults.currency: required when columns.currency is not mapped")
        if (
            "time_zone" not in columns
            and self.defaults.time_zone is None
            and "country" not in columns
            and self.defaults.country is not None
            and self.defaults.country not in COUNTRY_TIME_ZONES
        ):
            problems.append(
                f"defaults.time_zone: required: no default time zone is known for "
                f"{self.defaults.country} and columns.time_zone is not mapped"
            )
        if self.format == "xlsx":
            problems.extend(
                f"{key}: only applies to csv files"
                for key, default in _CSV_ONLY.items()
                if getattr(self, key) != default
            )
        elif self.sheet is not None:
            problems.append("sheet: only applies to xlsx files")
        if isinstance(self.sheet, int) and self.sheet < 1:
            problems.append("sheet: positions count from 1")
        if self.delimiter == self.quotechar:
            problems.append("quotechar: must differ from delimiter")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- what readers and parsers need ----------------------------------------------------

    def required_headers(self) -> list[str]:
        """Headers a file must have: every mapped column not in `optional_columns`, and every
        attribute."""
        optional = set(self.optional_columns)
        headers = [header for field, header in self.columns.items() if field not in optional]
        return _unique(headers + list(self.attributes))

    def optional_headers(self) -> list[str]:
        return _unique(self.columns[field] for field in self.optional_columns)

    def document_kinds(self) -> dict[str, DocumentKind]:
        """Code (as `document_code_key` makes it) -> kind."""
        if not self.document_types:
            return {kind.value: kind for kind in DocumentKind}
        return {document_code_key(code): kind for code, kind in self.document_types.items()}


def _unique(headers: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for header in headers:
        if header_key(header) not in seen:
            seen.add(header_key(header))
            out.append(header)
    return out


class ProfileError(ValueError):
    """A profile document is not valid; each problem names its place (dotted path) and why."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problems(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for detail in error.errors(include_url=False):
        problems.extend(_describe(detail))
    return problems


def _describe(detail: ErrorDetails) -> list[str]:
    path = _path(tuple(detail["loc"]))
    kind = detail["type"]
    if kind == "missing":
        return [f"{path}: required"]
    if kind == "extra_forbidden":
        return [f"{path}: unknown field"]
    if kind == "literal_error":
        return [f"{path}: must be one of {detail.get('ctx', {}).get('expected', '')}"]
    if kind == "enum":
        return [f"{path}: must be one of {detail.get('ctx', {}).get('expected', '')}"]
    if kind != "value_error":
        return [f"{path}: {detail['msg']}"]
    # Our validators report one problem a line, each starting with the entry it is about
    # (`.amont: unknown field`, `[1]: ...`), or with nothing when it is about the field itself.
    out = []
    for problem in detail["msg"].removeprefix("Value error, ").split("\n"):
        if not path:
            out.append(problem)
        elif problem.startswith((".", "[", ": ")):
            out.append(path + problem)
        else:
            out.append(f"{path}: {problem}")
    return out


def load_profile(text: str) -> ImportProfile:
    """Reads a profile document (YAML or JSON). `ProfileError` says where and why it is wrong."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ProfileError([f"line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError([f"{where}{problem} (not valid YAML)"]) from None
    if not isinstance(data, dict):
        raise ProfileError(["the document must be a mapping of fields (name, columns, ...)"])
    try:
        return ImportProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_problems(exc)) from None


def shipped_profiles() -> dict[str, ImportProfile]:
    """The profiles Recupero ships (`recupero_ingest/profiles/*.yaml`), by name."""
    folder = resources.files("recupero_ingest").joinpath("profiles")
    profiles: dict[str, ImportProfile] = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith((".yaml", ".yml", ".json")):
            try:
                profile = load_profile(entry.read_text(encoding="utf-8"))
            except ProfileError as exc:
                raise ProfileError(
                    [f"{entry.name}: {problem}" for problem in exc.problems]
                ) from None
            profiles[profile.name] = profile
    return profiles

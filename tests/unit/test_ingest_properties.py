"""Property-based tests of the parsing layer (hypothesis).

- Any bytes given as a file give rows, rejections or `UnreadableFile`, never another exception.
- Any record of arbitrary text gives a `DocumentRow` that the event contract accepts, or a
  `Rejection`.
- Amounts written the way bank exports write them read back to the exact minor units.
- The email and phone fast paths never disagree with email-validator and phonenumbers.
"""

import io
from decimal import Decimal
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from recupero_events import ContactDetails, DocumentKind, PostalAddress
from recupero_ingest.domain.contacts import (
    COUNTRIES,
    PhoneCheck,
    fast_email,
    fast_phone,
    reference_phone,
)
from recupero_ingest.domain.money import (
    MINOR_UNIT_EXPONENT,
    SEPARATOR_VARIANTS,
    AmountFormat,
    AmountReader,
)
from recupero_ingest.domain.profiles import FIELDS, ImportProfile, shipped_profiles
from recupero_ingest.domain.reading import SourceRecord, UnreadableFile, iter_records
from recupero_ingest.domain.records import RECORDS_PROFILE, record_to_source
from recupero_ingest.domain.rows import DocumentRow, Rejection, RowParser

PROFILES = shipped_profiles()
CSV_PROFILES = [PROFILES["generic-csv"], PROFILES["banco-andino"]]
PARSERS = {profile.name: RowParser(profile) for profile in [*CSV_PROFILES, RECORDS_PROFILE]}
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)


def check_parsed(parsed: DocumentRow | Rejection) -> None:
    """What every outcome must satisfy: a rejection names a canonical field; a row is
    consistent and fits the published event contract."""
    if isinstance(parsed, Rejection):
        assert parsed.field in FIELDS or parsed.field == "record"
        assert parsed.reason
        return
    assert parsed.amount_minor == parsed.principal_minor + parsed.interest_minor + parsed.fees_minor
    parts = (parsed.principal_minor, parsed.interest_minor, parsed.fees_minor)
    if parsed.kind is DocumentKind.CREDIT_NOTE:
        assert all(part <= 0 for part in parts)
    else:
        assert all(part >= 0 for part in parts)
    assert parsed.currency in MINOR_UNIT_EXPONENT
    assert parsed.debtor_id and parsed.name and parsed.document_id
    ContactDetails(
        name=parsed.name,
        email=parsed.email,
        phone=parsed.phone,
        country=parsed.country,
        time_zone=parsed.time_zone,
        locale=parsed.locale,
        postal_address=(
            None
            if parsed.postal_address is None
            else PostalAddress.model_validate_json(parsed.postal_address)
        ),
    )


def parse_file(data: bytes, profile: ImportProfile) -> None:
    parser = RowParser(profile)
    try:
        for record in iter_records(io.BytesIO(data), profile):
            check_parsed(parser.parse(record))
    except UnreadableFile:
        pass


# --- any bytes as a file ------------------------------------------------------------------

HEADERS = {
    "generic-csv": b"debtor_id,name,email,phone,country,time_zone,locale,document_id,"
    b"document_type,product,issued_on,due_on,amount,currency\n",
    "banco-andino": b"NRO_CLIENTE;NOMBRE Y APELLIDO;CORREO;CELULAR;PAIS;NRO_DOCUMENTO;TIPO_DOC;"
    b"PRODUCTO;FECHA_EMISION;FECHA_VENCIMIENTO;CAPITAL;INTERES;GASTOS;MONEDA;SUCURSAL;"
    b"SEGMENTO_CLIENTE;SCORE_RIESGO;CANAL_PREFERIDO;NRO_CUOTAS_VENCIDAS\r\n",
}


@FAST
@given(data=st.binary(max_size=3000), profile=st.sampled_from(CSV_PROFILES), headed=st.booleans())
@example(data=b"\xff\xfe\x00", profile=PROFILES["generic-csv"], headed=False)
@example(data=b'"unterminated', profile=PROFILES["banco-andino"], headed=True)
@example(data=b"\x00" * 10, profile=PROFILES["generic-csv"], headed=True)
def test_any_bytes_as_a_csv_file_give_rows_rejections_or_unreadable(
    data: bytes, profile: ImportProfile, headed: bool
) -> None:
    parse_file(HEADERS[profile.name] + data if headed else data, profile)


CELL_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            "C-1",
            "Ana",
            "invoice",
            "credit_note",
            "FC",
            "NC",
            "CUOTA",
            "MX",
            "PE",
            "pe",
            "MXN",
            "PEN",
            "CLP",
            "2026-10-01",
            "01/10/2026",
            "31/02/2026",
            "1.234,56",
            "1,234.56",
            "-10",
            "0",
            "12.345",
            "ana@example.com",
            "+52 55 1234 5678",
            "987654321",
            "America/Lima",
            "es-PE",
            '"',
            ";",
            "\n",
            "\r",
            "\x00",
            "640",
        ]
    ),
)


@FAST
@given(
    rows=st.lists(st.lists(CELL_TEXT, max_size=22), max_size=8),
    profile=st.sampled_from(CSV_PROFILES),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
    delimiter=st.sampled_from([",", ";", "|", "\t"]),
)
def test_any_cells_in_a_csv_file_give_rows_rejections_or_unreadable(
    rows: list[list[str]], profile: ImportProfile, encoding: str, delimiter: str
) -> None:
    header = HEADERS[profile.name].decode().replace(";", delimiter).replace(",", delimiter)
    text = header + "".join(delimiter.join(cells) + "\r\n" for cells in rows)
    parse_file(text.encode(encoding, errors="replace"), profile)


@settings(deadline=None, max_examples=60)
@given(data=st.binary(max_size=600))
@example(data=b"PK\x03\x04" + b"\x00" * 100)
def test_any_bytes_as_a_workbook_give_unreadable(data: bytes) -> None:
    parse_file(data, PROFILES["telco-sur"])


# --- any record of text ---------------------------------------------------------------------


@FAST
@given(
    cells=st.lists(CELL_TEXT, min_size=len(FIELDS), max_size=len(FIELDS)),
    profile=st.sampled_from(sorted(PARSERS)),
    attributes=st.one_of(st.just(()), st.lists(CELL_TEXT, max_size=3).map(tuple)),
)
def test_any_record_of_text_gives_a_valid_row_or_a_rejection(
    cells: list[str], profile: str, attributes: tuple[str, ...]
) -> None:
    check_parsed(PARSERS[profile].parse(SourceRecord(3, tuple(cells), attributes)))


@FAST
@given(
    record=st.dictionaries(
        st.sampled_from([*FIELDS, "other"]),
        st.one_of(
            CELL_TEXT,
            st.integers(),
            st.floats(),
            st.booleans(),
            st.none(),
            st.decimals(),
        ),
    ),
    attributes=st.one_of(
        st.dictionaries(st.text(max_size=5), st.one_of(CELL_TEXT, st.integers())),
        CELL_TEXT,
        st.none(),
    ),
)
def test_any_json_record_gives_a_valid_row_or_a_rejection(
    record: dict[str, Any], attributes: Any
) -> None:
    check_parsed(
        PARSERS["records"].parse(record_to_source(1, {**record, "attributes": attributes}))
    )


def test_a_record_whose_attributes_are_not_an_object_is_rejected_not_a_crash() -> None:
    record = {"debtor_id": "C-1", "attributes": "vip"}
    check_parsed(PARSERS["records"].parse(record_to_source(1, record)))


VALID_RECORD = {
    "debtor_id": "C-1",
    "name": "Ana",
    "country": "PE",
    "document_id": "F-1",
    "document_type": "invoice",
    "due_on": "2026-10-01",
    "currency": "PEN",
}


@FAST
@given(field=st.sampled_from(FIELDS), text=st.text(max_size=30))
def test_one_arbitrary_field_in_a_valid_record_gives_a_valid_row_or_a_rejection(
    field: str, text: str
) -> None:
    record = {**VALID_RECORD, "amount": "10.00", field: text}
    parsed = PARSERS["records"].parse(record_to_source(2, record))
    check_parsed(parsed)
    if isinstance(parsed, Rejection):
        assert parsed.field == field or (field, parsed.field) in {
            ("country", "time_zone"),  # a country with no default time zone (AC, AQ...)
            ("principal", "amount"),
            ("interest", "amount"),
            ("fees", "amount"),
            ("amount", "principal"),
            # A street line alone is half an address: a letter needs the city too.
            ("address_line_1", "city"),
            ("address_line_2", "city"),
        }


# --- amounts round-trip ---------------------------------------------------------------------


def bank_format(value: Decimal, exponent: int, decimal: str, thousands: str, trailing: int) -> str:
    """How an export writes `value`: grouped thousands, the decimal separator, maybe more zeros."""
    sign = "-" if value < 0 else ""
    whole, _, fraction = f"{abs(value):.{exponent}f}".partition(".")
    if thousands:
        groups: list[str] = []
        while len(whole) > 3:
            groups.insert(0, whole[-3:])
            whole = whole[:-3]
        whole = thousands.join([whole, *groups])
    fraction += "0" * trailing
    return f"{sign}{whole}{decimal}{fraction}" if fraction else f"{sign}{whole}"


@settings(deadline=None, max_examples=500)
@given(
    data=st.data(),
    currency=st.sampled_from(sorted(MINOR_UNIT_EXPONENT)),
    separators=st.sampled_from(
        [(".", None), (",", None), (",", "."), (".", ","), (",", " "), (".", "'"), (",", "'")]
    ),
    trailing=st.integers(0, 2),
)
def test_amounts_written_as_banks_write_them_read_back_exactly(
    data: st.DataObject, currency: str, separators: tuple[str, str | None], trailing: int
) -> None:
    exponent = MINOR_UNIT_EXPONENT[currency]
    minor = data.draw(st.integers(-(10**15), 10**15))
    value = Decimal(minor).scaleb(-exponent)
    decimal, thousands = separators
    variant = data.draw(st.sampled_from(SEPARATOR_VARIANTS[thousands] if thousands else ("",)))
    text = bank_format(value, exponent, decimal, variant, trailing)
    reader = AmountReader(AmountFormat(decimal, thousands))
    assert reader.minor_units(text, exponent, currency) == minor, text


# --- the email fast path agrees with email-validator ----------------------------------------

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
LOCAL = st.text(alphabet=ATEXT + ".", min_size=0, max_size=70)
LABEL = st.text(alphabet="abcxnXN019-", min_size=0, max_size=66)
DOMAIN = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
TLD = st.sampled_from(
    [
        "com",
        "pe",
        "CO",
        "xn--p1ai",
        "test",
        "local",
        "localhost",
        "onion",
        "invalid",
        "arpa",
        "c",
        "1com",
        "co1",
        "a" * 63,
        "a" * 64,
        "example",
    ]
)
ADDRESS = st.one_of(
    st.emails(),
    st.builds(lambda local, domain, tld: f"{local}@{domain}.{tld}", LOCAL, DOMAIN, TLD),
    st.builds(lambda local, tld: f"{local}@{tld}", LOCAL, TLD),
    st.text(alphabet=ATEXT + '.@ ñé"<>[]()', max_size=40),
    st.builds(
        lambda n, d: "a" * n + "@" + "b" * d + ".com", st.integers(1, 70), st.integers(1, 250)
    ),
)


@settings(deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.filter_too_much])
@given(address=ADDRESS)
@example(address="info@example.com")
@example(address="INFO@Example.com")
@example(address="a@xn--ls8h.com")
@example(address="a@ab--cd.com")
@example(address="a@b.test")
@example(address="a..b@example.com")
def test_the_email_fast_path_never_accepts_what_email_validator_rejects(address: str) -> None:
    fast = fast_email(address)
    assume(fast is not None)
    try:
        reference = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AssertionError(f"fast path accepted {address!r}; email-validator: {exc}") from None
    assert fast == reference


def test_the_email_fast_path_takes_the_plain_addresses() -> None:
    for address in ["d000123@deudores.example.com", "ana.perez+cobranza@Correo.COM.pe"]:
        assert fast_email(address) == validate_email(address, check_deliverability=False).normalized


# --- the phone fast path agrees with phonenumbers -------------------------------------------

REGIONS = ["MX", "AR", "CO", "PE", "CL", "EC", "UY", "PY", "BO", "PA", "CR", "GT", "DO", "US"]
REGIONS += ["ES", "BR", "IT", "GB", "DE", "FR", "RU", "VE", "HN", "SV", "NI", "CU"]
CALLING_CODES = sorted(
    {str(phonenumbers.country_code_for_region(region)) for region in REGIONS} | {"0", "999", "8"}
)
DIGITS = st.text(alphabet="0123456789", min_size=5, max_size=14)


@st.composite
def separated(draw: st.DrawFn, digits: st.SearchStrategy[str] = DIGITS) -> str:
    """Digits as people type them: groups split by spaces or dashes."""
    text = draw(digits)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=3)))
    out, last = [], 0
    for cut in cuts:
        out.append(text[last:cut])
        out.append(draw(st.sampled_from([" ", "-", "  "])))
        last = cut
    return "".join(out) + text[last:]


PHONE_TEXT = st.one_of(
    st.builds(lambda code, rest: f"+{code}{rest}", st.sampled_from(CALLING_CODES), separated()),
    st.builds(lambda code, rest: f"+{code} {rest}", st.sampled_from(CALLING_CODES), separated()),
    separated(),
    st.builds(lambda rest: f"0{rest}", separated()),
    st.builds(lambda rest: f"00{rest}", separated()),
    st.builds(lambda rest: f"15{rest}", separated()),
    st.text(alphabet="+0123456789 -()./x#", min_size=1, max_size=20),
)


@settings(deadline=None, max_examples=3000)
@given(
    text=PHONE_TEXT,
    region=st.sampled_from(REGIONS),
    check=st.sampled_from(["valid", "possible", "format"]),
)
@example(text="+521559586960", region="MX", check="valid")
@example(text="011 15 2345-6789", region="AR", check="valid")
@example(text="01 2345678", region="PE", check="valid")
@example(text="099 123 456", region="UY", check="possible")
def test_the_phone_fast_path_agrees_with_phonenumbers(
    text: str, region: str, check: PhoneCheck
) -> None:
    assert region in COUNTRIES
    fast = fast_phone(text, region, check)
    if fast is not None:  # None: the fast path leaves it to phonenumbers
        assert fast == reference_phone(text, region, check)


def test_the_phone_fast_path_takes_the_usual_numbers() -> None:
    for text, region in [
        ("+521559586960", "MX"),
        ("+52 55 1234 5678", "MX"),
        ("55 1234 5678", "MX"),
        ("987 654 321", "PE"),
        ("+51987654321", "PE"),
        ("300 123 4567", "CO"),
        ("011 15 2345-6789", "AR"),
        ("+56 9 8765 4321", "CL"),
    ]:
        assert fast_phone(text, region, "valid") == reference_phone(text, region, "valid")

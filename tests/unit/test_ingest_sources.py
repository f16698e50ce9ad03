"""Real-looking exports in, totals to the cent out: each file format a creditor sends.

The files are in tests/fixtures/ingest (written by make_fixtures.py there); the expected totals
below were added up by hand from those rows.
"""

import io
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook  # type: ignore[import-untyped]

from recupero_events import DocumentKind
from recupero_ingest.domain.profiles import ImportProfile, load_profile, shipped_profiles
from recupero_ingest.domain.reading import UnreadableFile, iter_records
from recupero_ingest.domain.rows import DocumentRow, Rejection, RowParser

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "ingest"
PROFILES = shipped_profiles()


class Parsed:
    def __init__(self, data: bytes, profile: ImportProfile) -> None:
        parser = RowParser(profile)
        self.rows: list[DocumentRow] = []
        self.rejections: list[Rejection] = []
        for record in iter_records(io.BytesIO(data), profile):
            parsed = parser.parse(record)
            if isinstance(parsed, Rejection):
                self.rejections.append(parsed)
            else:
                self.rows.append(parsed)

    def totals(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for row in self.rows:
            totals[row.currency] += row.amount_minor
        return dict(totals)

    def rejected(self) -> list[tuple[int, str]]:
        return [(item.row_number, item.field) for item in self.rejections]

    def rejection(self, row_number: int) -> Rejection:
        [found] = [item for item in self.rejections if item.row_number == row_number]
        return found


def parse_fixture(name: str, profile: ImportProfile) -> Parsed:
    return Parsed((FIXTURES / name).read_bytes(), profile)


def test_utf8_with_bom_comma_delimited() -> None:
    parsed = parse_fixture("generic_bom_comma.csv", PROFILES["generic-csv"])
    assert parsed.totals() == {"MXN": 150075 + 20000 - 10075, "COP": 35000050, "CLP": 125000}
    assert [row.row_number for row in parsed.rows] == [2, 3, 4, 5, 6]
    assert parsed.rejected() == [
        (8, "email"),
        (9, "due_on"),
        (10, "amount"),
        (11, "amount"),
        (12, "currency"),
    ]
    assert parsed.rejection(9).reason == "'31/10/2026' is not a date in the format %Y-%m-%d"
    assert parsed.rejection(10).reason == "12.345 has more than 2 decimals for MXN"
    ana, _, credit_note, luis, maria = parsed.rows
    assert (ana.name, ana.phone, ana.email) == (
        "Ana Pérez",
        "+525512345678",
        "ana.perez@example.com",
    )
    assert (credit_note.kind, credit_note.amount_minor) == (DocumentKind.CREDIT_NOTE, -10075)
    assert (luis.name, luis.email, luis.issued_on) == ("Gómez, Luis", "LUIS@example.com", None)
    assert maria.phone == "+56987654321"


def test_utf8_pipe_delimited_with_short_long_and_multiline_rows() -> None:
    parsed = parse_fixture("generic_pipe.csv", PROFILES["generic-csv"])
    assert parsed.totals() == {"PEN": 246912, "ARS": 5000}
    assert parsed.rows[0].product == "préstamo | cuota\nfija"
    # The quoted cell spans two lines, but the spreadsheet row numbers do not skip.
    assert [row.row_number for row in parsed.rows] == [2, 3, 5]
    assert parsed.rejected() == [(4, "country"), (6, "currency")]
    assert parsed.rejection(6).reason == "required value is empty"


def test_latin1_semicolon_bank_export_with_spanish_headers() -> None:
    parsed = parse_fixture("banco_andino_latin1.csv", PROFILES["banco-andino"])
    assert parsed.totals() == {
        "PEN": 136801 + 133266 - 15000,
        "COP": 240317890 + 5000000 - 15000000,
        "USD": 200000,
    }
    assert len(parsed.rows) == 7
    assert parsed.rejected() == [
        (9, "principal"),
        (10, "due_on"),
        (11, "document_type"),
        (12, "phone"),
        (13, "risk_score"),
        (14, "principal"),
        (15, "email"),
    ]
    assert parsed.rejection(9).reason.startswith(
        "'1.23,4' is not an amount: '.' may only separate groups of three digits"
    )
    assert parsed.rejection(10).reason == (
        "'31/02/2026' is not a date in any of the formats %d/%m/%Y, %d/%m/%y"
    )
    assert parsed.rejection(12).reason == "'+51 55' is not a valid phone number for PE"
    assert parsed.rejection(14).reason == "negative amount on an invoice"
    jose = parsed.rows[0]
    assert (jose.name, jose.debtor_id, jose.phone, jose.zone, jose.customer_type) == (
        "Núñez Ñañez, José",
        "10045789",
        "+51987654321",
        "Lima Centro",
        "Personas",
    )
    assert (jose.principal_minor, jose.interest_minor, jose.fees_minor) == (123456, 12345, 1000)
    assert (jose.due_on, jose.risk_score) == (date(2026, 9, 15), "640")
    assert jose.attributes == {"CANAL_PREFERIDO": "WhatsApp", "NRO_CUOTAS_VENCIDAS": "2"}
    maria = parsed.rows[3]
    assert (maria.email, maria.phone, maria.time_zone) == (
        "MARIA.PENA@correo.com.co",
        "+573001234567",
        "America/Bogota",
    )
    angel = parsed.rows[6]  # no PAIS: the profile's default country; a two-digit year
    assert (angel.country, angel.phone, angel.due_on, angel.locale) == (
        "PE",
        "+5112345678",
        date(2026, 1, 5),
        "es-PE",
    )


def test_the_same_export_read_as_utf8_is_refused_at_the_first_latin1_byte() -> None:
    profile = PROFILES["banco-andino"].model_copy(update={"encoding": "utf-8"})
    data = (FIXTURES / "banco_andino_latin1.csv").read_bytes()
    offset = data.index("Núñez".encode("latin-1")) + 1
    with pytest.raises(UnreadableFile, match=rf"^byte {offset} \(0xfa\) is not valid utf-8"):
        Parsed(data, profile)


def test_utf16_tab_delimited_excel_unicode_text() -> None:
    profile = load_profile((FIXTURES / "cooperativa-tab.yaml").read_text(encoding="utf-8"))
    parsed = parse_fixture("cooperativa_utf16_tab.txt", profile)
    assert parsed.totals() == {"UYU": 1234560 + 100000 + 25050}
    assert [row.kind for row in parsed.rows] == [DocumentKind.INSTALLMENT] * 3
    assert [(row.country, row.time_zone, row.phone) for row in parsed.rows[:1]] == [
        ("UY", "America/Montevideo", "+59899123456")
    ]
    assert parsed.rejected() == [(5, "due_on")]


def telco_workbook() -> bytes:
    workbook = Workbook()
    workbook.active.title = "Resumen"
    workbook.active["A1"] = "Resumen del mes"
    sheet = workbook.create_sheet("Deuda")
    sheet.append(["Telco Sur - Cartera morosa"])
    sheet.append(["Generado el", datetime(2026, 11, 1, 8, 30)])
    sheet.append(
        [
            "Nro. Cuenta",
            "Titular",
            "E-mail",
            "Telefono",  # no accent: headers match without them
            "Comprobante",
            "Tipo Comprobante",
            "Servicio",
            "Fecha Emisión",
            "Fecha Vto.",
            "Saldo",
            "Provincia",
            "Categoría",
            "Plan",
            "Líneas Activas",
        ]
    )
    martin = [100234, "Martín Fernández", "martin@example.com.ar", "011 15 2345-6789"]
    sheet.append(
        [
            *martin,
            "0003-00012345",
            "FB",
            "Móvil",
            date(2026, 9, 1),
            datetime(2026, 9, 20),
            15234.5,
            "Buenos Aires",
            "Residencial",
            "Plan 10GB",
            2,
        ]
    )
    sheet.append([])
    sheet.append(
        [
            *martin,
            "0003-00012346",
            "NCB",
            "Móvil",
            date(2026, 9, 5),
            date(2026, 9, 5),
            0.1 + 0.2,
            "Buenos Aires",
            "Residencial",
            "Plan 10GB",
            2,
        ]
    )
    sheet.append(
        [
            100999,
            "Acme SRL",
            None,
            None,
            "0001-00000077",
            "FA",
            "Fibra",
            "01/10/2026",
            "20/10/2026",
            "1.234,50",
            "Córdoba",
            "Empresa",
        ]
    )
    sheet.append(
        [
            101000,
            "Beto Sosa",
            None,
            "12",
            "0001-00000078",
            "FA",
            "Fibra",
            None,
            date(2026, 10, 20),
            100,
            "Salta",
            "Residencial",
        ]
    )
    sheet.append(
        [
            101001,
            "Carla Ibáñez",
            None,
            None,
            "0001-00000079",
            "FA",
            "Fibra",
            None,
            date(2026, 10, 20),
            99.999,
            "Salta",
            "Residencial",
        ]
    )
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_xlsx_billing_export_with_real_dates_and_numbers() -> None:
    parsed = Parsed(telco_workbook(), PROFILES["telco-sur"])
    # 15,234.50 - 0.30 (the float 0.30000000000000004 read as Excel shows it) + 1,234.50
    assert parsed.totals() == {"ARS": 1523450 - 30 + 123450}
    assert [row.row_number for row in parsed.rows] == [4, 6, 7]
    martin = parsed.rows[0]
    assert (martin.debtor_id, martin.phone, martin.due_on, martin.issued_on) == (
        "100234",
        "+5491123456789",
        date(2026, 9, 20),
        date(2026, 9, 1),
    )
    assert (martin.country, martin.currency, martin.zone, martin.customer_type) == (
        "AR",
        "ARS",
        "Buenos Aires",
        "Residencial",
    )
    assert martin.attributes == {"Plan": "Plan 10GB", "Líneas Activas": "2"}
    assert parsed.rows[1].kind is DocumentKind.CREDIT_NOTE
    assert parsed.rejected() == [(8, "phone"), (9, "amount")]
    assert parsed.rejection(9).reason == "99,999 has more than 2 decimals for ARS"


def test_an_xlsx_without_the_profiles_sheet_says_which_it_has() -> None:
    profile = PROFILES["telco-sur"].model_copy(update={"sheet": "Cartera"})
    with pytest.raises(UnreadableFile, match="no sheet 'Cartera'; it has 'Resumen', 'Deuda'"):
        Parsed(telco_workbook(), profile)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old", "old Excel .xls"),
        (b"debtor_id,name\n", "not a zip archive"),
        (b"PK\x03\x04 truncated", "not a readable XLSX workbook"),
    ],
)
def test_a_file_that_is_no_workbook_is_unreadable(data: bytes, message: str) -> None:
    with pytest.raises(UnreadableFile, match=message):
        Parsed(data, PROFILES["telco-sur"])


# --- the demo portfolio imports as it did before profiles -----------------------------------


def test_the_generic_profile_imports_the_demo_portfolio_as_before() -> None:
    parsed = Parsed(
        (REPO / "deploy" / "demo" / "portfolio.csv").read_bytes(), PROFILES["generic-csv"]
    )
    # Figures of the walking skeleton's parser on the same file, taken before it was replaced.
    assert parsed.totals() == {
        "MXN": 693116635,
        "ARS": 538964379,
        "PEN": 668848235,
        "COP": 665337451,
        "CLP": 6256812,
    }
    assert Counter(row.currency for row in parsed.rows) == {
        "MXN": 564,
        "ARS": 445,
        "PEN": 547,
        "COP": 519,
        "CLP": 551,
    }
    assert parsed.rejected() == [
        (row, field)
        for start in range(2628, 2640, 3)
        for row, field in ((start, "email"), (start + 1, "due_on"), (start + 2, "amount"))
    ]
    assert {row.debtor_id for row in parsed.rows} == {f"D{n:06d}" for n in range(1, 1001)}

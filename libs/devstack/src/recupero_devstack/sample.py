"""A realistic sample portfolio in the generic CSV layout, reproducible from a seed.

Debtors across Mexico, Colombia, Peru, Chile and Argentina, each with one to four documents
(loan installments, card invoices, some credit notes), due dates spread from 20 days ahead to a year
behind, so every aging bucket is populated. A few rows are deliberately invalid to show rejections.
"""

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta

COLUMNS = [
    "debtor_id",
    "name",
    "email",
    "phone",
    "country",
    "time_zone",
    "locale",
    "document_id",
    "document_type",
    "product",
    "issued_on",
    "due_on",
    "amount",
    "currency",
]

COUNTRIES = [
    ("MX", "America/Mexico_City", "es-MX", "MXN", "+52155", 2),
    ("CO", "America/Bogota", "es-CO", "COP", "+57300", 2),
    ("PE", "America/Lima", "es-PE", "PEN", "+51987", 2),
    ("CL", "America/Santiago", "es-CL", "CLP", "+56987", 0),
    ("AR", "America/Argentina/Buenos_Aires", "es-AR", "ARS", "+54911", 2),
]
FIRST = ["Ana", "Luis", "María", "José", "Carmen", "Jorge", "Lucía", "Pedro", "Sofía", "Diego"]
LAST = ["Pérez", "García", "López", "Martínez", "Rodríguez", "Gómez", "Díaz", "Torres", "Ruiz"]
PRODUCTS = [("installment", "loan"), ("invoice", "card"), ("invoice", "service")]


def sample_portfolio(
    debtors: int,
    *,
    seed: int = 7,
    invalid_rows: int = 0,
    today: date | None = None,
    id_prefix: str = "D",
) -> str:
    """CSV text with `debtors` valid debtors plus `invalid_rows` rows that must be rejected."""
    rng = random.Random(seed)
    today = today or date.today()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for number in range(1, debtors + 1):
        country, zone, locale, currency, phone_prefix, decimals = rng.choice(COUNTRIES)
        debtor_id = f"{id_prefix}{number:06d}"
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{debtor_id.lower()}@deudores.example.com"
        phone = f"{phone_prefix}{rng.randrange(10**6, 10**7)}"
        oldest_due = today + timedelta(days=rng.randint(-365, 20))
        for doc in range(rng.randint(1, 4)):
            kind, product = rng.choice(PRODUCTS)
            due = oldest_due + timedelta(days=30 * doc)
            whole = rng.randint(50, 25_000)
            amount = f"{whole}" if decimals == 0 else f"{whole}.{rng.randrange(100):02d}"
            writer.writerow(
                [
                    debtor_id,
                    name,
                    email,
                    phone,
                    country,
                    zone,
                    locale,
                    f"{debtor_id}-{doc + 1}",
                    kind,
                    product,
                    (due - timedelta(days=30)).isoformat(),
                    due.isoformat(),
                    amount,
                    currency,
                ]
            )
        if rng.random() < 0.05:
            whole = rng.randint(10, 40)
            writer.writerow(
                [
                    debtor_id,
                    name,
                    email,
                    phone,
                    country,
                    zone,
                    locale,
                    f"{debtor_id}-NC",
                    "credit_note",
                    "card",
                    oldest_due.isoformat(),
                    oldest_due.isoformat(),
                    f"{whole}" if decimals == 0 else f"{whole}.00",
                    currency,
                ]
            )
    for number in range(invalid_rows):
        problem = number % 3
        writer.writerow(
            [
                f"X{number:05d}",
                "Fila Inválida",
                "no-es-un-email" if problem == 0 else "",
                "",
                "MX",
                "America/Mexico_City",
                "es-MX",
                f"X{number:05d}-1",
                "invoice",
                "loan",
                "",
                "31/02/2024" if problem == 1 else today.isoformat(),
                "12,50" if problem == 2 else "10.00",
                "MXN",
            ]
        )
    return out.getvalue()


def afternoon_zone(now: datetime) -> str:
    """The IANA fixed-offset zone (UTC-12 .. UTC+11) where it is 14:00-something at `now`.

    Tests and benchmarks that run on the wall clock put debtors there under US rules (Regulation
    F: 08:00-21:00 every day, email uncapped): the real contact policy then allows a contact
    whatever the hour they run. The policy is not bypassed; the debtors are chosen.
    """
    offset = (14 - now.astimezone(UTC).hour + 12) % 24 - 12
    # Etc/GMT names count the other way: Etc/GMT-3 is three hours ahead of UTC.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"

"""The one-line summaries a person reads in a debtor's timeline."""

from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from recupero_events import (
    CollectionStage,
    ContactDetails,
    DebtDocument,
    DebtImported,
    DebtorSegmented,
    DocumentKind,
    Money,
    PaymentReceived,
)
from recupero_portal_api.domain.timeline import describe, format_money

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 1, tzinfo=UTC)
CONTACT = ContactDetails(name="Ana Pérez", country="MX", time_zone="America/Mexico_City")


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(amount_minor=152_350, currency="MXN"), "MXN 1,523.50"),
        (Money(amount_minor=-5, currency="USD"), "USD -0.05"),
        (Money(amount_minor=1_500_000, currency="CLP"), "CLP 1,500,000"),
    ],
)
def test_money_is_formatted_exactly_in_its_currency(money: Money, text: str) -> None:
    assert format_money(money) == text


def test_debt_imported_says_how_many_documents_and_the_balance() -> None:
    document = DebtDocument(
        document_id="FC-1",
        kind=DocumentKind.INVOICE,
        due_on=date(2025, 1, 31),
        amount=Money(amount_minor=152_350, currency="MXN"),
    )
    event = DebtImported(
        tenant_id="demo-bank",
        debtor_id="C-1",
        import_id=uuid4(),
        as_of=NOW,
        contact=CONTACT,
        documents=[document],
        balance=document.amount,
        oldest_due_on=document.due_on,
        change="new",
    )

    assert describe(event) == "Debt imported: 1 document, balance MXN 1,523.50"


def test_segmentation_says_where_the_debtor_moved_from() -> None:
    balance = Money(amount_minor=100, currency="MXN")
    event = DebtorSegmented(
        tenant_id="demo-bank",
        debtor_id="C-1",
        segment="31-60",
        stage=CollectionStage.ADMINISTRATIVE,
        previous_segment="1-30",
        days_past_due=31,
        balance=balance,
        snapshot_balance=balance,
        snapshot_as_of=NOW,
        oldest_due_on=date(2025, 1, 29),
        contact=CONTACT,
        ruleset_version="default-1",
        reason="rule '31-60'",
        evaluated_at=NOW,
    )

    assert describe(event) == "Segmented 31-60 (was 1-30), stage administrative, 31 days past due"


def test_payment_says_amount_and_method() -> None:
    event = PaymentReceived(
        tenant_id="demo-bank",
        debtor_id="C-1",
        payment_id=uuid4(),
        amount=Money(amount_minor=50_000, currency="MXN"),
        method="bank_transfer",
        received_at=NOW,
    )

    assert describe(event) == "Payment received: MXN 500.00 by bank_transfer"

"""The facts a `debt-imported` event gives the rules: product, zone, score, channel and the rest."""

from decimal import Decimal, InvalidOperation
from typing import Any

from recupero_events import Channel, DebtImported


def _risk_score(raw: str | None) -> int | None:
    """The creditor's score when it is a number (decimals truncated); else unknown."""
    if raw is None:
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or abs(value) >= 2**31:
        return None
    return int(value)


def preferred_channel(event: DebtImported) -> str:
    """What the creditor said (custom attribute `preferred_channel`), else the richest channel
    we can reach the debtor on."""
    custom = event.attributes.custom if event.attributes else {}
    stated = custom.get("preferred_channel", "").strip().lower()
    if stated in {channel.value for channel in Channel}:
        return stated
    if event.contact.phone:
        return Channel.WHATSAPP.value
    if event.contact.email:
        return Channel.EMAIL.value
    return Channel.LETTER.value


def product_of(event: DebtImported) -> str | None:
    """Product of the oldest document that still owes money: the one that sets days past due."""
    owing = sorted(
        (doc for doc in event.documents if doc.amount.amount_minor > 0),
        key=lambda doc: (doc.due_on, doc.document_id),
    )
    for document in owing or sorted(event.documents, key=lambda doc: doc.due_on):
        if document.product:
            return document.product
    return None


def imported_facts(event: DebtImported) -> dict[str, Any]:
    """Columns of the debtors table that an import sets."""
    attributes = event.attributes
    return {
        "time_zone": event.contact.time_zone,
        "country": event.contact.country,
        "product": product_of(event),
        "zone": attributes.zone if attributes else None,
        "customer_type": attributes.customer_type if attributes else None,
        "risk_score": _risk_score(attributes.risk_score if attributes else None),
        "preferred_channel": preferred_channel(event),
        "documents_count": len(event.documents),
        "custom": dict(attributes.custom) if attributes else {},
    }

"""Groups validated rows by debtor, nets credit notes and computes the updated total debt."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date

from recupero_events import ContactDetails, DebtDocument, Money
from recupero_ingest.domain.rows import DocumentRow, Rejection


@dataclass(slots=True)
class DebtorPortfolio:
    debtor_id: str
    contact: ContactDetails
    currency: str
    documents: list[DebtDocument] = field(default_factory=list)

    @property
    def balance(self) -> Money:
        return Money(
            amount_minor=sum(doc.amount.amount_minor for doc in self.documents),
            currency=self.currency,
        )

    @property
    def oldest_due_on(self) -> date:
        # The oldest document that still owes money drives days past due; credit notes do not.
        owing = [doc.due_on for doc in self.documents if doc.amount.amount_minor > 0]
        return min(owing or [doc.due_on for doc in self.documents])

    def fingerprint(self) -> str:
        """Changes exactly when what we would tell the other services changes."""
        canonical = {
            "contact": self.contact.model_dump(mode="json"),
            "documents": sorted(
                (doc.model_dump(mode="json") for doc in self.documents),
                key=lambda doc: str(doc["document_id"]),
            ),
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def consolidate(rows: list[DocumentRow]) -> tuple[list[DebtorPortfolio], list[Rejection]]:
    debtors: dict[str, DebtorPortfolio] = {}
    seen_documents: set[tuple[str, str]] = set()
    rejections: list[Rejection] = []
    for row in rows:
        portfolio = debtors.get(row.debtor_id)
        if portfolio is None:
            portfolio = debtors[row.debtor_id] = DebtorPortfolio(
                debtor_id=row.debtor_id,
                contact=ContactDetails(
                    name=row.name,
                    email=row.email,
                    phone=row.phone,
                    country=row.country,
                    time_zone=row.time_zone,
                    locale=row.locale,
                ),
                currency=row.currency,
            )
        elif row.currency != portfolio.currency:
            rejections.append(
                Rejection(
                    row.row_number,
                    "currency",
                    row.currency,
                    f"debtor {row.debtor_id} already has documents in {portfolio.currency}",
                )
            )
            continue
        if (row.debtor_id, row.document_id) in seen_documents:
            rejections.append(
                Rejection(
                    row.row_number,
                    "document_id",
                    row.document_id,
                    "duplicate document for this debtor in the same file",
                )
            )
            continue
        seen_documents.add((row.debtor_id, row.document_id))
        portfolio.documents.append(
            DebtDocument(
                document_id=row.document_id,
                kind=row.kind,
                product=row.product,
                issued_on=row.issued_on,
                due_on=row.due_on,
                amount=Money(amount_minor=row.amount_minor, currency=row.currency),
            )
        )
    return list(debtors.values()), rejections

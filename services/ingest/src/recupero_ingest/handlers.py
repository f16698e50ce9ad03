"""Ingest's use cases as plain async functions over a unit of work."""

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

from recupero_events import DebtImported
from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.domain.consolidation import consolidate
from recupero_ingest.domain.rows import DocumentRow, Rejection, missing_columns, parse_row
from recupero_runtime.db import Work


class UnreadableFile(ValueError):
    """The file as a whole cannot be imported (encoding, header); nothing was stored."""


@dataclass(frozen=True)
class ImportPortfolio:
    tenant_id: str
    filename: str
    content: bytes
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class ImportSummary:
    import_id: UUID
    rows_total: int
    rows_accepted: int
    rows_rejected: int
    debtors_new: int
    debtors_changed: int
    debtors_unchanged: int
    balance_by_currency: dict[str, int]


def _read_rows(content: bytes) -> list[dict[str, str]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"file is not UTF-8: byte {exc.start} is invalid") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise UnreadableFile("file is empty: expected a CSV header line")
    missing = missing_columns(header)
    if missing:
        raise UnreadableFile(f"header lacks required columns: {', '.join(missing)}")
    reader.fieldnames = header
    return list(reader)


async def import_portfolio(command: ImportPortfolio, uow: Work[IngestRepository]) -> ImportSummary:
    raw_rows = _read_rows(command.content)
    import_id = uuid4()
    valid: list[DocumentRow] = []
    rejected: list[Rejection] = []
    # Row 1 is the header, so data rows are numbered as a spreadsheet shows them.
    for row_number, raw in enumerate(raw_rows, start=2):
        parsed = parse_row(row_number, raw)
        if isinstance(parsed, Rejection):
            rejected.append(parsed)
        else:
            valid.append(parsed)
    portfolios, conflicts = consolidate(valid)
    rejected.extend(conflicts)

    await uow.repo.create_import(command.tenant_id, import_id, command.filename, command.as_of)
    known = await uow.repo.fingerprints(
        command.tenant_id, [portfolio.debtor_id for portfolio in portfolios]
    )
    changes: Counter[str] = Counter()
    balances: Counter[str] = Counter()
    for portfolio in portfolios:
        balances[portfolio.currency] += portfolio.balance.amount_minor
        previous = known.get(portfolio.debtor_id)
        if previous == portfolio.fingerprint():
            changes["unchanged"] += 1
            continue
        change = "new" if previous is None else "changed"
        changes[change] += 1
        await uow.repo.save_debtor(command.tenant_id, portfolio, import_id)
        uow.publish(
            DebtImported(
                tenant_id=command.tenant_id,
                debtor_id=portfolio.debtor_id,
                import_id=import_id,
                as_of=command.as_of,
                contact=portfolio.contact,
                documents=portfolio.documents,
                balance=portfolio.balance,
                oldest_due_on=portfolio.oldest_due_on,
                change=change,
            )
        )
    await uow.repo.add_rejections(command.tenant_id, import_id, rejected)
    summary = ImportSummary(
        import_id=import_id,
        rows_total=len(raw_rows),
        rows_accepted=len(raw_rows) - len({item.row_number for item in rejected}),
        rows_rejected=len({item.row_number for item in rejected}),
        debtors_new=changes["new"],
        debtors_changed=changes["changed"],
        debtors_unchanged=changes["unchanged"],
        balance_by_currency=dict(balances),
    )
    await uow.repo.finish_import(
        import_id,
        rows_total=summary.rows_total,
        rows_accepted=summary.rows_accepted,
        rows_rejected=summary.rows_rejected,
        debtors_new=summary.debtors_new,
        debtors_changed=summary.debtors_changed,
        debtors_unchanged=summary.debtors_unchanged,
        balance_by_currency=summary.balance_by_currency,
    )
    return summary

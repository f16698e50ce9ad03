"""Read side: what the portal shows, assembled from the read models and the domain's balance rule.

Queries only; nothing here writes or commits.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recupero_events import Money, Topic
from recupero_portal_api.adapters.repository import AnyRow, PortalRepository
from recupero_portal_api.domain.balance import PaymentSeen, outstanding_balance, totals_by_currency


@dataclass(frozen=True, slots=True)
class TimelineItem:
    occurred_at: datetime
    topic: str
    type: str
    summary: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DebtorDetail:
    debtor_id: str
    contact: dict[str, Any]
    documents: list[dict[str, Any]]
    balance: Money
    segment: str | None
    stage: str | None
    days_past_due: int | None
    timeline: list[TimelineItem]


@dataclass(frozen=True, slots=True)
class DebtorListItem:
    debtor_id: str
    name: str
    balance: Money
    segment: str | None
    stage: str | None


@dataclass(frozen=True, slots=True)
class DebtorPage:
    items: list[DebtorListItem]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class TenantSummary:
    debtors_imported: int
    debtors_segmented: int
    actions_due: int
    messages_sent: int
    promises_registered: int
    payments_applied: int
    outstanding_by_currency: dict[str, int]


async def _balances(
    repo: PortalRepository, tenant_id: str, snapshots: Sequence[AnyRow], everyone: bool = False
) -> dict[str, Money]:
    """Balance shown for each debtor of `snapshots` (rows with snapshot and currency)."""
    later_payments = await repo.payments_after_snapshot(
        tenant_id, None if everyone else [row.debtor_id for row in snapshots]
    )
    by_debtor: dict[str, list[PaymentSeen]] = defaultdict(list)
    for payment in later_payments:
        by_debtor[payment.debtor_id].append(
            PaymentSeen(
                amount=Money(amount_minor=payment.amount_minor, currency=payment.currency),
                received_at=payment.received_at,
            )
        )
    return {
        row.debtor_id: outstanding_balance(
            Money(amount_minor=row.snapshot_balance_minor, currency=row.currency),
            row.snapshot_as_of,
            by_debtor[row.debtor_id],
        )
        for row in snapshots
    }


async def debtor_detail(
    repo: PortalRepository, tenant_id: str, debtor_id: str
) -> DebtorDetail | None:
    debtor = await repo.get_debtor(tenant_id, debtor_id)
    if debtor is None:
        return None
    balances = await _balances(repo, tenant_id, [debtor])
    events = await repo.debtor_timeline(tenant_id, debtor_id)
    return DebtorDetail(
        debtor_id=debtor.debtor_id,
        contact=debtor.contact,
        documents=debtor.documents,
        balance=balances[debtor.debtor_id],
        segment=debtor.segment,
        stage=debtor.stage,
        days_past_due=debtor.days_past_due,
        timeline=[
            TimelineItem(
                occurred_at=event.occurred_at,
                topic=event.topic,
                type=event.event_type,
                summary=event.summary,
                details=event.details,
            )
            for event in events
        ],
    )


async def debtor_page(
    repo: PortalRepository, tenant_id: str, segment: str | None, limit: int, offset: int
) -> DebtorPage:
    rows, total = await repo.list_debtors(tenant_id, segment, limit, offset)
    balances = await _balances(repo, tenant_id, rows)
    return DebtorPage(
        items=[
            DebtorListItem(
                debtor_id=row.debtor_id,
                name=row.contact["name"],
                balance=balances[row.debtor_id],
                segment=row.segment,
                stage=row.stage,
            )
            for row in rows
        ],
        total=total,
        limit=limit,
        offset=offset,
    )


async def tenant_summary(repo: PortalRepository, tenant_id: str) -> TenantSummary:
    activity = await repo.activity_by_topic(tenant_id)

    def events(topic: Topic) -> int:
        return activity.get(topic.value, (0, 0))[0]

    def debtors(topic: Topic) -> int:
        return activity.get(topic.value, (0, 0))[1]

    balances = await _balances(repo, tenant_id, await repo.all_snapshots(tenant_id), everyone=True)
    return TenantSummary(
        debtors_imported=debtors(Topic.DEBT_IMPORTED),
        debtors_segmented=debtors(Topic.DEBTOR_SEGMENTED),
        actions_due=events(Topic.ACTION_DUE),
        messages_sent=events(Topic.MESSAGE_SENT),
        promises_registered=events(Topic.PROMISE_REGISTERED),
        payments_applied=events(Topic.PAYMENT_RECEIVED),
        outstanding_by_currency=totals_by_currency(balances.values()),
    )

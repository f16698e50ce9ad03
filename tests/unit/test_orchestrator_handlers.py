"""Orchestrator handlers on an in-memory repository: planning, firing, stopping on payment."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from recupero_events import (
    ActionDue,
    CollectionStage,
    ContactDetails,
    DebtorSegmented,
    Money,
    PaymentReceived,
)
from recupero_orchestrator import handlers
from recupero_orchestrator.domain.strategy import PlannedStep
from tests.unit.fakes import FakeWork, delivered

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
TIMING = handlers.StrategyTiming(first_delay=timedelta(0), reminder_interval=timedelta(days=3))
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class FakeOrchestratorRepository:
    cases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    payments: dict[UUID, PaymentReceived] = field(default_factory=dict)
    actions: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    # Events written to the outbox in batch rows, as the relay would send them.
    batched: list[ActionDue] = field(default_factory=list)

    async def upsert_case(self, event: DebtorSegmented, now: datetime) -> dict[str, Any]:
        key = (event.tenant_id, event.debtor_id)
        case = self.cases.setdefault(
            key, {"status": "open", "opened_at": now, "closed_reason": None, "strategy_id": None}
        )
        case.update(
            tenant_id=event.tenant_id,
            debtor_id=event.debtor_id,
            contact=event.contact.model_dump(mode="json"),
            segment=event.segment,
            stage=event.stage.value,
            days_past_due=event.days_past_due,
            oldest_due_on=event.oldest_due_on,
            snapshot_balance_minor=event.snapshot_balance.amount_minor,
            currency=event.snapshot_balance.currency,
            snapshot_as_of=event.snapshot_as_of,
        )
        return dict(case)

    # No tenant strategies here: every debtor follows the default plan.
    async def variants_of(self, tenant_id: str, segment: str) -> list[tuple[str, int]]:
        return []

    async def active_strategy(self, tenant_id: str, strategy_id: str) -> None:
        return None

    async def active_strategy_for_segment(self, tenant_id: str, segment: str) -> None:
        return None

    async def promises_of(self, tenant_id: str, debtor_id: str) -> list[dict[str, Any]]:
        return []

    async def cancel_open_tasks(self, tenant_id: str, debtor_id: str, reason: str) -> None:
        return None

    async def case_for_update(self, tenant_id: str, debtor_id: str) -> dict[str, Any] | None:
        case = self.cases.get((tenant_id, debtor_id))
        return None if case is None else dict(case)

    async def record_payment(self, event: PaymentReceived) -> bool:
        if event.payment_id in self.payments:
            return False
        self.payments[event.payment_id] = event
        return True

    async def payments_of(
        self, tenant_id: str, debtor_id: str, currency: str
    ) -> list[tuple[int, datetime]]:
        return [
            (p.amount.amount_minor, p.received_at)
            for p in self.payments.values()
            if (p.tenant_id, p.debtor_id, p.amount.currency) == (tenant_id, debtor_id, currency)
        ]

    async def set_case_status(
        self, tenant_id: str, debtor_id: str, status: str, reason: str | None
    ) -> None:
        self.cases[(tenant_id, debtor_id)].update(status=status, closed_reason=reason)

    async def reopen_case(self, tenant_id: str, debtor_id: str, now: datetime) -> None:
        self.cases[(tenant_id, debtor_id)].update(status="open", closed_reason=None, opened_at=now)

    async def has_actions(self, tenant_id: str, debtor_id: str, since: datetime) -> bool:
        return any(
            (a["tenant_id"], a["debtor_id"]) == (tenant_id, debtor_id) and a["planned_at"] >= since
            for a in self.actions.values()
        )

    async def schedule(
        self, tenant_id: str, debtor_id: str, steps: list[PlannedStep], planned_at: datetime
    ) -> None:
        for step in steps:
            action_id = uuid4()
            self.actions[action_id] = {
                "action_id": action_id,
                "tenant_id": tenant_id,
                "debtor_id": debtor_id,
                "strategy": step.strategy,
                "channel": step.channel.value,
                "template": step.template,
                "due_at": step.due_at,
                "planned_at": planned_at,
                "status": "pending",
                "action_key": None,
                "expires_at": None,
            }

    async def cancel_pending(self, tenant_id: str, debtor_id: str, reason: str) -> int:
        pending = [
            a
            for a in self.actions.values()
            if (a["tenant_id"], a["debtor_id"]) == (tenant_id, debtor_id)
            and a["status"] == "pending"
        ]
        for action in pending:
            action.update(status="cancelled", status_reason=reason)
        return len(pending)

    async def claim_due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        due = sorted(
            (a for a in self.actions.values() if a["status"] == "pending" and a["due_at"] <= now),
            key=lambda a: a["due_at"],
        )[:limit]
        rows = []
        for action in due:
            case = self.cases[(action["tenant_id"], action["debtor_id"])]
            rows.append({**case, **action, "case_status": case["status"]})
        return rows

    # The contact policy's view of the debtor: no opt-outs, holds or tenant override here.
    async def contact_restrictions(self, tenant_id: str, debtor_id: str) -> dict[str, Any]:
        return {"opted_out": [], "authorised": None, "holds": []}

    async def contacts_of(self, tenant_id: str, debtor_id: str) -> list[dict[str, Any]]:
        return [
            c for c in self.contacts if (c["tenant_id"], c["debtor_id"]) == (tenant_id, debtor_id)
        ]

    async def record_contact(
        self,
        tenant_id: str,
        debtor_id: str,
        channel: str,
        at: datetime,
        conversation: bool,
        action_id: UUID | None,
    ) -> None:
        self.contacts.append(
            {
                "tenant_id": tenant_id,
                "debtor_id": debtor_id,
                "channel": channel,
                "contacted_at": at,
                "conversation": conversation,
            }
        )

    async def policy_override(self, tenant_id: str, country: str) -> None:
        return None

    async def record_decision(self, values: dict[str, Any]) -> None:
        self.decisions.append(values)

    async def settle_action(
        self, action_id: UUID, status: str, now: datetime, reason: str | None = None
    ) -> None:
        self.actions[action_id].update(status=status, status_reason=reason, fired_at=now)

    async def reschedule(self, action_id: UUID, due_at: datetime) -> None:
        self.actions[action_id].update(due_at=due_at)

    # The scheduler judges a claimed batch at once: the same data and writes, many at a time.
    async def cases_of(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        return {key: dict(self.cases[key]) for key in keys if key in self.cases}

    async def debtor_facts(self, keys: list[tuple[str, str]]) -> dict[str, Any]:
        facts: dict[str, Any] = {
            kind: {}
            for kind in ("actions", "promises", "opt_outs", "authorised", "holds", "contacts")
        }
        facts["payments"] = {
            key: [
                {"amount_minor": p.amount.amount_minor, "currency": p.amount.currency,
                 "received_at": p.received_at}
                for p in self.payments.values()
                if (p.tenant_id, p.debtor_id) == key
            ]
            for key in keys
        }  # fmt: skip
        facts["contacts"] = {
            key: [c for c in self.contacts if (c["tenant_id"], c["debtor_id"]) == key]
            for key in keys
        }
        return facts

    async def settle_actions(
        self, settled: list[tuple[UUID, str, str | None]], now: datetime
    ) -> None:
        for action_id, status, reason in settled:
            await self.settle_action(action_id, status, now, reason)

    async def reschedule_actions(self, moved: list[tuple[UUID, datetime]]) -> None:
        for action_id, due_at in moved:
            await self.reschedule(action_id, due_at)

    async def record_decisions(self, decisions: list[dict[str, Any]]) -> None:
        self.decisions += decisions

    async def record_contacts(
        self, contacts: list[tuple[str, str, str, UUID]], at: datetime
    ) -> None:
        for tenant_id, debtor_id, channel, action_id in contacts:
            await self.record_contact(tenant_id, debtor_id, channel, at, False, action_id)

    async def publish_in_batches(self, events: list[Any], source: str) -> None:
        self.batched += [ActionDue.model_validate_json(event.model_dump_json()) for event in events]

    async def add_plans(self, schedule: list[Any], statuses: list[Any]) -> int:
        assert not (schedule or statuses), "no strategy here plans anything"
        return 0


def segmented(
    balance_minor: int = 250_000, stage: CollectionStage = CollectionStage.ADMINISTRATIVE
) -> DebtorSegmented:
    return DebtorSegmented(
        tenant_id="acme-bank",
        debtor_id="C-1",
        segment="1-30" if stage is not CollectionStage.SETTLED else "settled",
        stage=stage,
        days_past_due=12,
        balance=Money(amount_minor=balance_minor, currency="MXN"),
        snapshot_balance=Money(amount_minor=balance_minor, currency="MXN"),
        snapshot_as_of=AS_OF,
        oldest_due_on=date(2026, 10, 21),
        contact=ContactDetails(
            name="Ana Pérez", email="ana@example.com", country="MX", time_zone="America/Mexico_City"
        ),
        ruleset_version="default-1",
        reason="rule '1-30'",
        evaluated_at=NOW,
    )


def payment(amount_minor: int) -> PaymentReceived:
    return PaymentReceived(
        tenant_id="acme-bank",
        debtor_id="C-1",
        payment_id=uuid4(),
        amount=Money(amount_minor=amount_minor, currency="MXN"),
        method="cash",
        received_at=NOW + timedelta(hours=1),
    )


@pytest.fixture
def work() -> FakeWork[FakeOrchestratorRepository]:
    return FakeWork(FakeOrchestratorRepository())


async def open_case(
    work: FakeWork[FakeOrchestratorRepository], event: DebtorSegmented | None = None
) -> None:
    handle = handlers.debtor_segmented_handler(lambda: NOW, TIMING)
    await handle(delivered(event or segmented()), work)


async def fire(work: FakeWork[FakeOrchestratorRepository], at: datetime) -> list[ActionDue]:
    await handlers.fire_due_actions(work, at, 100)
    fired = work.take() + work.repo.batched
    work.repo.batched = []
    assert all(isinstance(event, ActionDue) for event in fired)
    return fired


async def test_a_new_case_plans_two_email_reminders(
    work: FakeWork[FakeOrchestratorRepository],
) -> None:
    await open_case(work)
    planned = sorted(work.repo.actions.values(), key=lambda a: a["due_at"])
    assert [(a["template"], a["due_at"]) for a in planned] == [
        ("first-reminder", NOW),
        ("second-reminder", NOW + timedelta(days=3)),
    ]
    await open_case(work)  # re-segmented, same case: the plan is not made twice
    assert len(work.repo.actions) == 2


async def test_due_actions_fire_once_in_order_with_the_current_balance(
    work: FakeWork[FakeOrchestratorRepository],
) -> None:
    await open_case(work)
    first = await fire(work, NOW)
    assert [(e.template, e.balance.amount_minor) for e in first] == [("first-reminder", 250_000)]
    assert await fire(work, NOW + timedelta(days=1)) == []

    await handlers.payment_received_handler(lambda: NOW)(delivered(payment(50_000)), work)
    second = await fire(work, NOW + timedelta(days=3))
    assert [(e.template, e.balance.amount_minor) for e in second] == [("second-reminder", 200_000)]


async def test_full_payment_closes_the_case_and_cancels_what_was_pending(
    work: FakeWork[FakeOrchestratorRepository],
) -> None:
    await open_case(work)
    await fire(work, NOW)
    paid = payment(250_000)
    await handlers.payment_received_handler(lambda: NOW)(delivered(paid), work)
    case = work.repo.cases[("acme-bank", "C-1")]
    assert (case["status"], case["closed_reason"]) == ("closed", "balance settled")
    assert sorted(a["status"] for a in work.repo.actions.values()) == ["cancelled", "fired"]
    assert await fire(work, NOW + timedelta(days=30)) == []


async def test_a_payment_redelivered_is_not_counted_twice(
    work: FakeWork[FakeOrchestratorRepository],
) -> None:
    await open_case(work)
    half = payment(125_000)
    handle = handlers.payment_received_handler(lambda: NOW)
    await handle(delivered(half), work)
    await handle(delivered(half), work)
    assert work.repo.cases[("acme-bank", "C-1")]["status"] == "open"


async def test_settled_by_the_segmenter_closes_and_new_debt_reopens_with_a_new_plan(
    work: FakeWork[FakeOrchestratorRepository],
) -> None:
    await open_case(work)
    await open_case(work, segmented(0, CollectionStage.SETTLED))
    assert work.repo.cases[("acme-bank", "C-1")]["status"] == "closed"
    assert all(a["status"] == "cancelled" for a in work.repo.actions.values())

    await open_case(work, segmented(90_000))
    assert work.repo.cases[("acme-bank", "C-1")]["status"] == "open"
    assert sum(a["status"] == "pending" for a in work.repo.actions.values()) == 2


async def test_a_default_plan_email_due_at_night_waits_for_contact_hours(
    work: FakeWork[FakeOrchestratorRepository],
) -> None:
    night = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)  # a Tuesday, 03:00 in Mexico City
    await handlers.debtor_segmented_handler(lambda: night, TIMING)(delivered(segmented()), work)
    assert await fire(work, night) == []
    seven = datetime(2026, 11, 3, 13, 0, tzinfo=UTC)  # 07:00 there, when contact hours open
    moved = work.repo.decisions[-1]
    assert (moved["verdict"], moved["rule_id"], moved["moved_to"]) == (
        "moved",
        "mx.contact-hours",
        seven,
    )
    assert await fire(work, seven - timedelta(minutes=1)) == []
    assert [e.template for e in await fire(work, seven)] == ["first-reminder"]
    assert work.repo.decisions[-1]["verdict"] == "allowed"

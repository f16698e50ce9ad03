"""Orchestrator use cases: open cases and plan contact, stop on payment, fire due actions."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from recupero_events import (
    ActionDue,
    Channel,
    CollectionStage,
    ContactDetails,
    DebtorSegmented,
    DecodedEvent,
    Money,
    PaymentReceived,
)
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.strategy import outstanding, plan_default_strategy
from recupero_runtime.consumer import Handler
from recupero_runtime.db import Work

log = structlog.get_logger()

Clock = Callable[[], datetime]
Worker = Callable[[], Awaitable[None]]
SETTLED_REASON = "balance settled"


@dataclass(frozen=True)
class StrategyTiming:
    first_delay: timedelta
    reminder_interval: timedelta


async def _outstanding(
    uow: Work[OrchestratorRepository], tenant_id: str, debtor_id: str, case: dict[str, Any]
) -> int:
    paid = await uow.repo.payments_of(tenant_id, debtor_id, case["currency"])
    return outstanding(case["snapshot_balance_minor"], case["snapshot_as_of"], paid)


async def _close(uow: Work[OrchestratorRepository], tenant_id: str, debtor_id: str) -> None:
    """A settled case stops at once: every pending action is cancelled in this transaction."""
    await uow.repo.set_case_status(tenant_id, debtor_id, "closed", SETTLED_REASON)
    cancelled = await uow.repo.cancel_pending(tenant_id, debtor_id, SETTLED_REASON)
    log.info("case_closed", debtor_id=debtor_id, cancelled_actions=cancelled)


def debtor_segmented_handler(clock: Clock, timing: StrategyTiming) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[OrchestratorRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, DebtorSegmented)
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        now = clock()
        case = await uow.repo.upsert_case(payload, now)
        # Either the segmenter or the payments we saw ourselves may know of the settlement first.
        settled = payload.stage is CollectionStage.SETTLED
        if settled or await _outstanding(uow, tenant_id, debtor_id, case) <= 0:
            if case["status"] == "open":
                await _close(uow, tenant_id, debtor_id)
            return
        if case["status"] == "closed":
            # New debt after a settlement: a fresh case with a fresh plan.
            await uow.repo.reopen_case(tenant_id, debtor_id, now)
        elif await uow.repo.has_actions(tenant_id, debtor_id, case["opened_at"]):
            return
        steps = plan_default_strategy(now, timing.first_delay, timing.reminder_interval)
        await uow.repo.schedule(tenant_id, debtor_id, steps, now)

    return handle


def payment_received_handler() -> Handler:
    async def handle(event: DecodedEvent, uow: Work[OrchestratorRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, PaymentReceived)
        if not await uow.repo.record_payment(payload):
            return
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        case = await uow.repo.case_for_update(tenant_id, debtor_id)
        if case is None or case["status"] != "open":
            return
        if await _outstanding(uow, tenant_id, debtor_id, case) <= 0:
            await _close(uow, tenant_id, debtor_id)

    return handle


async def fire_due_actions(uow: Work[OrchestratorRepository], now: datetime, limit: int) -> int:
    """Publish `action-due` for every pending action whose time has come; returns how many."""
    due = await uow.repo.claim_due(now, limit)
    fired = []
    for action in due:
        if action["case_status"] != "open":
            continue
        balance = await _outstanding(uow, action["tenant_id"], action["debtor_id"], action)
        uow.publish(
            ActionDue(
                tenant_id=action["tenant_id"],
                debtor_id=action["debtor_id"],
                action_id=action["action_id"],
                channel=Channel(action["channel"]),
                template=action["template"],
                strategy=action["strategy"],
                scheduled_for=action["due_at"],
                contact=ContactDetails.model_validate(action["contact"]),
                balance=Money(amount_minor=balance, currency=action["currency"]),
                days_past_due=action["days_past_due"],
                oldest_due_on=action["oldest_due_on"],
            )
        )
        fired.append(action["action_id"])
    await uow.repo.mark_fired(fired, now)
    return len(fired)

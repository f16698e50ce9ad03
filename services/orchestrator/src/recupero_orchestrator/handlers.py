"""Orchestrator use cases: open cases and plan contact (a tenant strategy, or the default plan),
pause on promises, react to message statuses, stop on payment, fire due actions (every one of them
past the contact policy)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from recupero_events import (
    CollectionStage,
    DebtImported,
    DebtorSegmented,
    DecodedEvent,
    MessageSent,
    MessageStatus,
    MessageStatusChanged,
    PaymentReceived,
    PromiseRegistered,
)
from recupero_orchestrator import authorisations, firing, planning
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.strategies import VariantShare, assign_variant
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
    await uow.repo.cancel_open_tasks(tenant_id, debtor_id, SETTLED_REASON)
    log.info("case_closed", debtor_id=debtor_id, cancelled_actions=cancelled)


def debtor_segmented_handler(clock: Clock, timing: StrategyTiming) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[OrchestratorRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, DebtorSegmented)
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        now = clock()
        before = await uow.repo.case_for_update(tenant_id, debtor_id)
        case = await uow.repo.upsert_case(payload, now)
        # Either the segmenter or the payments we saw ourselves may know of the settlement first.
        settled = payload.stage is CollectionStage.SETTLED
        if settled or await _outstanding(uow, tenant_id, debtor_id, case) <= 0:
            if case["status"] == "open":
                await _close(uow, tenant_id, debtor_id)
            return
        reopened = case["status"] == "closed"
        if reopened:
            # New debt after a settlement: a fresh case with a fresh plan.
            await uow.repo.reopen_case(tenant_id, debtor_id, now)
        strategy = await _strategy_for(uow, payload, now)
        entered = reopened or before is None or before["segment"] != payload.segment
        if strategy is not None or (before is not None and before["strategy_id"] is not None):
            await _follow(uow, payload, before, strategy, entered, now)
            if strategy is not None:
                return
        elif not reopened and await uow.repo.has_actions(tenant_id, debtor_id, case["opened_at"]):
            return
        steps = plan_default_strategy(now, timing.first_delay, timing.reminder_interval)
        await uow.repo.schedule(tenant_id, debtor_id, steps, now)

    return handle


async def _strategy_for(
    uow: Work[OrchestratorRepository], event: DebtorSegmented, now: datetime
) -> tuple[str, int] | None:
    """The active strategy (id, version) for the debtor's segment, or None for the default plan.

    A segment with champion/challenger variants splits its debtors by a stable hash, and a debtor
    keeps the variant it got; otherwise the strategy the segmenter named, or one whose document
    lists the segment.
    """
    tenant_id, debtor_id, segment = event.tenant_id, event.debtor_id, event.segment
    variants = await uow.repo.variants_of(tenant_id, segment)
    if variants:
        chosen = await uow.repo.assigned_variant(tenant_id, segment, debtor_id)
        if chosen is None:
            shares = [VariantShare(strategy_id=s, percent=p) for s, p in variants]
            chosen = assign_variant(tenant_id, debtor_id, segment, shares)
            await uow.repo.assign_variant(tenant_id, segment, debtor_id, chosen, now)
        row = await uow.repo.active_strategy(tenant_id, chosen)
    elif event.strategy is not None:
        row = await uow.repo.active_strategy(tenant_id, event.strategy)
        row = row or await uow.repo.active_strategy_for_segment(tenant_id, segment)
    else:
        row = await uow.repo.active_strategy_for_segment(tenant_id, segment)
    return None if row is None else (row["strategy_id"], row["version"])


async def _follow(
    uow: Work[OrchestratorRepository],
    event: DebtorSegmented,
    before: dict[str, Any] | None,
    strategy: tuple[str, int] | None,
    entered: bool,
    now: datetime,
) -> None:
    """Switch the debtor to `strategy` cleanly: what the old one still had pending is cancelled,
    and the new one starts from the segment entry."""
    tenant_id, debtor_id = event.tenant_id, event.debtor_id
    current = None if before is None else (before["strategy_id"], before["strategy_version"])
    if before is not None and current == strategy and not entered:
        await planning.replan(uow, tenant_id, debtor_id, now)  # new balance, same run
        return
    name = "the default plan" if strategy is None else f"{strategy[0]}@{strategy[1]}"
    reason = f"entered segment {event.segment!r}: now on {name}"
    cancelled = await uow.repo.cancel_pending(tenant_id, debtor_id, reason)
    await uow.repo.follow_strategy(tenant_id, debtor_id, strategy, now)
    log.info("strategy_switched", debtor_id=debtor_id, strategy=name, cancelled=cancelled)
    await planning.replan(uow, tenant_id, debtor_id, now)


def debt_imported_handler(clock: Clock) -> Handler:
    """The portfolio may carry the channels each debtor authorised (a custom attribute); the rest
    of an import reaches the orchestrator through the segmenter."""

    async def handle(event: DecodedEvent, uow: Work[OrchestratorRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, DebtImported)
        await authorisations.record_imported(uow, payload, clock())

    return handle


def payment_received_handler(clock: Clock) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[OrchestratorRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, PaymentReceived)
        if not await uow.repo.record_payment(payload):
            return
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        case = await uow.repo.case_for_update(tenant_id, debtor_id)
        if case is None or case["status"] != "open":
            return
        now = clock()
        await planning.resolve_promises(uow, tenant_id, debtor_id, now, due_only=False)
        if await _outstanding(uow, tenant_id, debtor_id, case) <= 0:
            await _close(uow, tenant_id, debtor_id)
        else:
            # A partial payment: the strategy goes on with the new balance.
            await planning.replan(uow, tenant_id, debtor_id, now)

    return handle


def promise_registered_handler(clock: Clock) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[OrchestratorRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, PromiseRegistered)
        await planning.register_promise(uow, payload, clock())

    return handle


_DELIVERY_OF = {
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.READ: "read",
    MessageStatus.FAILED: "failed",
    MessageStatus.REPLIED: "read",
}


def message_sent_handler(clock: Clock) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[OrchestratorRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, MessageSent)
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        await uow.repo.record_delivery(tenant_id, payload.action_id, "sent", payload.sent_at)
        await planning.replan(uow, tenant_id, debtor_id, clock())

    return handle


def message_status_changed_handler(clock: Clock) -> Handler:
    """Delivery receipts cancel fallbacks, failures trigger them, a reply stops the strategy;
    a reply asking to stop (BAJA, STOP) is an opt-out of its channel, case or not."""

    async def handle(event: DecodedEvent, uow: Work[OrchestratorRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, MessageStatusChanged)
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        if payload.opt_out:
            await uow.repo.add_opt_out(
                tenant_id, debtor_id, payload.channel.value, payload.occurred_at
            )
        case = await uow.repo.case_for_update(tenant_id, debtor_id)
        if case is None:
            return
        delivery = _DELIVERY_OF[payload.status]
        await uow.repo.record_delivery(tenant_id, payload.action_id, delivery, payload.occurred_at)
        if payload.status is MessageStatus.REPLIED:
            await uow.repo.record_reply(tenant_id, debtor_id, payload.occurred_at)
        await planning.replan(uow, tenant_id, debtor_id, clock())

    return handle


async def fire_due_actions(uow: Work[OrchestratorRepository], now: datetime, limit: int) -> int:
    """Handle every pending action whose time has come: a strategy's go through the planner, and
    every action, the default plan's too, through the contact policy, which allows, moves or
    drops it. The claimed batch is judged at once (`firing.fire_batch`). Returns how many were
    claimed."""
    due = await uow.repo.claim_due(now, limit)
    await firing.fire_batch(uow, due, now)
    return len(due)

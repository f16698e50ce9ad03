"""Segmenter use cases: keep each debtor's facts, place the debtor by the tenant's active rule set,
activate new rule set versions, age the portfolio every local midnight, and preview a draft.

One debtor at a time (an event arrived) the rule set is interpreted in Python; a whole portfolio
(activation, aging sweep, preview) is evaluated by its compiled SQL twin in set-based statements.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

import structlog

from recupero_events import (
    CollectionStage,
    ContactDetails,
    DebtImported,
    DebtorSegmented,
    DecodedEvent,
    MessageSent,
    Money,
    PaymentReceived,
    PromiseRegistered,
    Topic,
)
from recupero_runtime.consumer import Handler
from recupero_runtime.db import UnitOfWork, Work
from recupero_segmenter.adapters.repository import (
    Chunk,
    SegmenterRepository,
    StoredRuleSet,
    facts_of,
    version_label,
)
from recupero_segmenter.domain.aging import Placement, outstanding
from recupero_segmenter.domain.defaults import DEFAULT_RULESET_VERSION, default_ruleset
from recupero_segmenter.domain.evaluation import (
    evaluate,
    field_values,
    local_date,
    propensity_inputs,
)
from recupero_segmenter.domain.imported import imported_facts
from recupero_segmenter.domain.parsing import parse_ruleset
from recupero_segmenter.domain.propensity import propensity
from recupero_segmenter.domain.rules import RuleSet

log = structlog.get_logger()

Clock = Callable[[], datetime]
UnitOfWorkFactory = Callable[[], UnitOfWork[SegmenterRepository]]


class RuleBook:
    """The rule set in force for a tenant. Parsed versions are cached: a version never changes
    once stored, so a second replica sees the same thing."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, int], RuleSet] = {}

    def parsed(self, stored: StoredRuleSet) -> RuleSet:
        key = (stored.tenant_id, stored.version)
        if key not in self._parsed:
            self._parsed[key] = parse_ruleset(stored.document)
        return self._parsed[key]

    async def active(self, uow: Work[SegmenterRepository], tenant_id: str) -> tuple[str, RuleSet]:
        stored = await uow.repo.active_ruleset(tenant_id)
        if stored is None:
            return DEFAULT_RULESET_VERSION, default_ruleset()
        return stored.label, self.parsed(stored)


# -- one debtor ---------------------------------------------------------------------------------


async def resegment(
    uow: Work[SegmenterRepository],
    rules: RuleBook,
    tenant_id: str,
    debtor_id: str,
    now: datetime,
    trigger: str,
) -> None:
    """Place the debtor; publish `debtor-segmented` when segment, stage, strategy or balance
    moved."""
    debtor = await uow.repo.debtor_for_update(tenant_id, debtor_id)
    if debtor is None:
        return  # an event for a debtor we have not seen imported yet: placed on import
    currency = debtor["currency"]
    balance = outstanding(
        debtor["snapshot_balance_minor"],
        debtor["snapshot_as_of"],
        await uow.repo.payments_of(tenant_id, debtor_id, currency),
    )
    previous_balance = debtor["balance_minor"]
    debtor["balance_minor"] = balance
    label, ruleset = await rules.active(uow, tenant_id)
    today = local_date(now, debtor["time_zone"])
    facts = facts_of(debtor)
    decision = evaluate(ruleset, field_values(facts, today))
    target = decision.target
    placement = Placement(
        segment=target.name,
        stage=target.stage,
        days_past_due=(today - debtor["oldest_due_on"]).days,
        reason=decision.reason,
        ruleset_version=label,
        strategy=target.strategy,
    )
    moved = (debtor["segment"], debtor["stage"], debtor["strategy"]) != (
        target.name,
        target.stage.value,
        target.strategy,
    )
    if not moved and previous_balance == balance:
        return
    if not moved:
        # Same place, new balance: tell the orchestrator (it quotes the balance) under the
        # version that placed the debtor there.
        placement = Placement(
            placement.segment,
            placement.stage,
            placement.days_past_due,
            placement.reason,
            debtor["ruleset_version"] or label,
            placement.strategy,
        )
    await uow.repo.save_placement(
        tenant_id,
        debtor_id,
        placement,
        balance,
        now,
        (debtor["segment"], debtor["stage"]),
        trigger,
        balance_moved=previous_balance != balance,
    )
    uow.publish(
        DebtorSegmented(
            tenant_id=tenant_id,
            debtor_id=debtor_id,
            segment=placement.segment,
            stage=placement.stage,
            strategy=placement.strategy,
            previous_segment=debtor["segment"],
            previous_stage=CollectionStage(debtor["stage"]) if debtor["stage"] else None,
            days_past_due=placement.days_past_due,
            balance=Money(amount_minor=balance, currency=currency),
            snapshot_balance=Money(
                amount_minor=debtor["snapshot_balance_minor"], currency=currency
            ),
            snapshot_as_of=debtor["snapshot_as_of"],
            oldest_due_on=debtor["oldest_due_on"],
            contact=ContactDetails.model_validate(debtor["contact"]),
            # What the orchestrator routes and ranks agents' tasks by.
            zone=facts.zone,
            propensity_score=propensity(propensity_inputs(facts, today)).score,
            ruleset_version=placement.ruleset_version,
            reason=placement.reason,
            evaluated_at=now,
        )
    )


def _later(known: date | None, new: date) -> date:
    return new if known is None or new > known else known


def debt_imported_handler(clock: Clock, rules: RuleBook) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[SegmenterRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, DebtImported)
        now = clock()
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        time_zone = payload.contact.time_zone
        await uow.repo.save_snapshot(payload, imported_facts(payload))
        if payload.change == "new":
            # Payments may arrive before the debtor's first import; count them now.
            received = await uow.repo.payment_times(tenant_id, debtor_id)
            if received:
                await uow.repo.update_facts(
                    tenant_id,
                    debtor_id,
                    payments_count=len(received),
                    last_payment_on=max(local_date(at, time_zone) for at in received),
                )
        await uow.repo.watch_time_zone(tenant_id, time_zone, local_date(now, time_zone))
        await resegment(uow, rules, tenant_id, debtor_id, now, Topic.DEBT_IMPORTED.value)

    return handle


def payment_received_handler(clock: Clock, rules: RuleBook) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[SegmenterRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, PaymentReceived)
        if not await uow.repo.record_payment(payload):
            return
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        debtor = await uow.repo.debtor_for_update(tenant_id, debtor_id)
        if debtor is None:
            return
        paid_on = local_date(payload.received_at, debtor["time_zone"])
        await uow.repo.count_up(
            tenant_id,
            debtor_id,
            "payments_count",
            last_payment_on=_later(debtor["last_payment_on"], paid_on),
        )
        await resegment(uow, rules, tenant_id, debtor_id, clock(), Topic.PAYMENT_RECEIVED.value)

    return handle


def promise_registered_handler(clock: Clock, rules: RuleBook) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[SegmenterRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, PromiseRegistered)
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        debtor = await uow.repo.debtor_for_update(tenant_id, debtor_id)
        if debtor is None or not await uow.repo.record_promise(payload):
            return
        promised = local_date(payload.registered_at, debtor["time_zone"])
        await uow.repo.count_up(
            tenant_id,
            debtor_id,
            "promises_made",
            last_promise_on=_later(debtor["last_promise_on"], promised),
        )
        await resegment(uow, rules, tenant_id, debtor_id, clock(), Topic.PROMISE_REGISTERED.value)

    return handle


def message_sent_handler(clock: Clock, rules: RuleBook) -> Handler:
    async def handle(event: DecodedEvent, uow: Work[SegmenterRepository]) -> None:
        payload = event.payload
        assert isinstance(payload, MessageSent)
        tenant_id, debtor_id = payload.tenant_id, payload.debtor_id
        debtor = await uow.repo.debtor_for_update(tenant_id, debtor_id)
        if debtor is None:
            return
        sent_on = local_date(payload.sent_at, debtor["time_zone"])
        await uow.repo.count_up(
            tenant_id,
            debtor_id,
            "actions_count",
            last_contact_on=_later(debtor["last_contact_on"], sent_on),
            last_contact_channel=payload.channel.value,
        )
        await resegment(uow, rules, tenant_id, debtor_id, clock(), Topic.MESSAGE_SENT.value)

    return handle


async def record_promise_outcome(
    uow: Work[SegmenterRepository],
    rules: RuleBook,
    tenant_id: str,
    promise_id: UUID,
    kept: bool,
    decided_at: datetime,
    now: datetime,
) -> None:
    """A promise was kept or broken (reported by the orchestrator): count it once and re-place
    the debtor. Ready for the `promise-kept` / `promise-broken` events of the orchestrator."""
    outcome = "kept" if kept else "broken"
    debtor_id = await uow.repo.record_promise_outcome(tenant_id, promise_id, outcome, decided_at)
    if debtor_id is None:
        return
    await uow.repo.count_up(tenant_id, debtor_id, f"promises_{outcome}")
    await resegment(uow, rules, tenant_id, debtor_id, now, f"promise-{outcome}")


# -- a whole portfolio --------------------------------------------------------------------------


def zone_dates(time_zones: list[str], now: datetime) -> list[tuple[str, date]]:
    """Today in each time zone: the one place where the set-based path learns the date."""
    return [(zone, local_date(now, zone)) for zone in time_zones]


@dataclass(frozen=True)
class ActivationReport:
    version: str
    evaluated: int
    changed: int
    finished: bool
    seconds: float


class RuleSetNotFound(LookupError):
    pass


async def activate(
    unit_of_work: UnitOfWorkFactory,
    rules: RuleBook,
    tenant_id: str,
    version: int,
    clock: Clock,
    chunk_size: int,
    connections: int = 1,
) -> ActivationReport:
    """Make `version` active, then re-segment the whole portfolio with it."""
    async with unit_of_work() as uow:
        stored = await uow.repo.ruleset(tenant_id, version, for_update=True)
        if stored is None:
            raise RuleSetNotFound(version)
        if stored.status != "active":
            await uow.repo.activate(tenant_id, version, clock())
            await uow.commit()
    return await continue_activation(
        unit_of_work, rules, tenant_id, version, clock, chunk_size, connections
    )


async def continue_activation(
    unit_of_work: UnitOfWorkFactory,
    rules: RuleBook,
    tenant_id: str,
    version: int,
    clock: Clock,
    chunk_size: int,
    connections: int = 1,
) -> ActivationReport:
    """Re-segment the portfolio in chunks of debtors, one transaction each, from where the last
    run stopped; `connections` chunks at a time. Events of a chunk leave as soon as it commits.

    A chunk done twice (a crash between chunks that committed out of order, or two replicas
    finishing the same activation) changes nothing the second time: it only moves debtors that
    are not yet where the rule set puts them."""
    started = time.perf_counter()
    now = clock()
    label = version_label(version)
    async with unit_of_work() as uow:
        stored = await uow.repo.ruleset(tenant_id, version)
        zones = zone_dates(await uow.repo.time_zones(tenant_id), now)
    if stored is None or stored.status != "active":
        raise RuleSetNotFound(version)
    ruleset = rules.parsed(stored)
    while stored.resegment_finished_at is None:
        async with unit_of_work() as uow:
            chunks = await uow.repo.chunk_bounds(tenant_id, stored.resegment_cursor, chunk_size)
        if not chunks:
            async with unit_of_work() as uow:
                await _still_active(uow, tenant_id, version)
                await uow.repo.finish_activation(tenant_id, version, now)
                await uow.commit()
        else:
            await _activation_pass(
                unit_of_work,
                tenant_id,
                version,
                ruleset,
                zones,
                now,
                ActivationProgress(chunks, stored.resegment_evaluated),
                connections,
            )
        async with unit_of_work() as uow:
            stored = await uow.repo.ruleset(tenant_id, version)
        if stored is None or stored.status != "active":
            raise RuleSetNotFound(version)
    return ActivationReport(
        label,
        stored.resegment_evaluated,
        stored.resegment_changed,
        True,
        time.perf_counter() - started,
    )


class ActivationProgress:
    """Which chunks of one pass have committed, and so how far the cursor may move: up to the
    end of the longest run of committed chunks from the start of the pass."""

    def __init__(self, chunks: list[Chunk], evaluated_before: int) -> None:
        self.chunks = chunks
        self._evaluated_before = evaluated_before
        self._committed: set[int] = set()

    def done_with(self, index: int) -> tuple[str | None, int]:
        """Cursor and count of evaluated debtors if chunk `index` commits now."""
        done = self._committed | {index}
        prefix = 0
        while prefix in done:
            prefix += 1
        if prefix == 0:
            return None, self._evaluated_before
        evaluated = self._evaluated_before + sum(c.debtors for c in self.chunks[:prefix])
        return self.chunks[prefix - 1].upto, evaluated

    def committed(self, index: int) -> None:
        self._committed.add(index)


async def _activation_pass(
    unit_of_work: UnitOfWorkFactory,
    tenant_id: str,
    version: int,
    ruleset: RuleSet,
    zones: list[tuple[str, date]],
    now: datetime,
    progress: ActivationProgress,
    connections: int,
) -> None:
    """Re-segment the chunks of `progress`, `connections` at a time, one transaction each."""
    label = version_label(version)

    async def run_chunk(index: int) -> None:
        chunk = progress.chunks[index]
        async with unit_of_work() as uow:
            changed = await uow.repo.resegment(
                tenant_id,
                ruleset,
                label,
                zones,
                now,
                "activation",
                uow.correlation_id,
                after=chunk.after,
                upto=chunk.upto,
            )
            # Locked last and held to commit: a chunk of a version retired meanwhile rolls back.
            await _still_active(uow, tenant_id, version)
            await uow.repo.record_changed(tenant_id, version, changed)
            cursor, evaluated = progress.done_with(index)
            if cursor is not None:
                await uow.repo.advance_cursor(tenant_id, version, cursor, evaluated)
            await uow.commit()
        progress.committed(index)

    await _run_all(run_chunk, len(progress.chunks), connections)
    # Every chunk committed; the cursor lags behind those that committed out of order.
    async with unit_of_work() as uow:
        await _still_active(uow, tenant_id, version)
        cursor, evaluated = progress.done_with(len(progress.chunks) - 1)
        assert cursor is not None
        await uow.repo.advance_cursor(tenant_id, version, cursor, evaluated)
        await uow.commit()


async def _still_active(uow: Work[SegmenterRepository], tenant_id: str, version: int) -> None:
    stored = await uow.repo.ruleset(tenant_id, version, for_update=True)
    if stored is None or stored.status != "active":
        raise RuleSetNotFound(version)


async def _run_all(run: Callable[[int], Awaitable[None]], count: int, concurrency: int) -> None:
    """Run `run(0)` .. `run(count - 1)` in order, `concurrency` at a time; the first failure
    stops the others."""
    indexes = iter(range(count))

    async def worker() -> None:
        for index in indexes:
            await run(index)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(concurrency, count))):
                group.create_task(worker())
    except ExceptionGroup as failed:
        # Callers handle `RuleSetNotFound` (a version retired meanwhile) like any other error.
        raise failed.exceptions[0] from failed


async def sweep_aging(unit_of_work: UnitOfWorkFactory, rules: RuleBook, now: datetime) -> int:
    """Move debtors whose local date has turned since the last sweep into their new bucket; one
    transaction per tenant and time zone. Returns how many debtors changed segment or stage."""
    async with unit_of_work() as uow:
        clocks = await uow.repo.aging_clocks()
    changed = 0
    for tenant_id, time_zone, swept_on in clocks:
        today = local_date(now, time_zone)
        if swept_on >= today:
            continue
        async with unit_of_work() as uow:
            if not await uow.repo.claim_aging(tenant_id, time_zone, today):
                continue  # another replica has it, or did it
            label, ruleset = await rules.active(uow, tenant_id)
            moved = await uow.repo.resegment(
                tenant_id,
                ruleset,
                label,
                [(time_zone, today)],
                now,
                "aging",
                uow.correlation_id,
                time_zone=time_zone,
            )
            await uow.repo.mark_swept(tenant_id, time_zone, today)
            await uow.commit()
        if moved:
            log.info("aging_swept", tenant_id=tenant_id, time_zone=time_zone, changed=moved)
        changed += moved
    return changed


def aging_worker(
    unit_of_work: UnitOfWorkFactory,
    rules: RuleBook,
    clock: Clock,
    interval_seconds: float,
    chunk_size: int,
    sleep: Callable[[float], Awaitable[None]],
    connections: int = 1,
) -> Callable[[], Awaitable[None]]:
    """Every interval: finish any activation a crash interrupted, then age what turned a day."""

    async def run() -> None:
        while True:
            async with unit_of_work() as uow:
                unfinished = await uow.repo.unfinished_activations()
            for tenant_id, version in unfinished:
                await continue_activation(
                    unit_of_work, rules, tenant_id, version, clock, chunk_size, connections
                )
            await sweep_aging(unit_of_work, rules, clock())
            await sleep(interval_seconds)

    return run


# -- what-if ------------------------------------------------------------------------------------


@dataclass
class SegmentTotals:
    segment: str
    stage: str
    strategy: str | None
    debtors: int = 0
    balance: dict[str, int] = field(default_factory=dict)  # per currency, minor units


@dataclass
class Preview:
    debtors: int
    segments: list[SegmentTotals]
    current: dict[str, int]  # debtors per current segment
    movements: dict[str, dict[str, int]]  # current segment -> proposed segment -> debtors
    seconds: float


UNPLACED = "(unplaced)"


async def preview(
    uow: Work[SegmenterRepository], tenant_id: str, ruleset: RuleSet, now: datetime
) -> Preview:
    """What the draft would do to today's portfolio, without applying it."""
    started = time.perf_counter()
    zones = zone_dates(await uow.repo.time_zones(tenant_id), now)
    targets = ruleset.targets()
    totals = [SegmentTotals(t.name, t.stage.value, t.strategy) for t in targets]
    current: dict[str, int] = {}
    movements: dict[str, dict[str, int]] = {}
    total = 0
    for segment, index, currency, count, balance in await uow.repo.preview(
        tenant_id, ruleset, zones
    ):
        proposed = totals[index]
        proposed.debtors += count
        proposed.balance[currency] = proposed.balance.get(currency, 0) + balance
        source = segment or UNPLACED
        current[source] = current.get(source, 0) + count
        row = movements.setdefault(source, {})
        row[proposed.segment] = row.get(proposed.segment, 0) + count
        total += count
    return Preview(total, totals, current, movements, time.perf_counter() - started)


def describe_facts(debtor: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Every field value the rules would see for this debtor today."""
    return field_values(facts_of(debtor), local_date(now, debtor["time_zone"]))

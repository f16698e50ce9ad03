"""Time moves debtors with no new import: the aging sweep at each debtor's local midnight, driven by
an injectable clock so months pass in seconds; payments, promises and messages re-segment at once.
Real PostgreSQL; events read back from the segmenter's outbox."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from recupero_events import (
    Channel,
    CollectionStage,
    ContactDetails,
    DebtDocument,
    DebtImported,
    DebtorSegmented,
    DocumentKind,
    MessageSent,
    Money,
    PaymentReceived,
    PromiseRegistered,
)
from recupero_runtime.db import upgrade_schema
from recupero_runtime.outbox import events_of
from recupero_runtime.service import Service
from recupero_segmenter import handlers
from recupero_segmenter.adapters.repository import SegmenterRepository
from recupero_segmenter.bootstrap import bootstrap
from recupero_segmenter.domain.defaults import AGING_BY_AMOUNT_DOCUMENT
from recupero_segmenter.settings import SegmenterSettings
from tests.unit.fakes import delivered

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 10, 18, tzinfo=UTC)  # noon in Mexico City


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    service: Service[SegmenterRepository]
    rules: handlers.RuleBook
    clock: Clock
    tenant: str = field(default_factory=lambda: f"t-{uuid4().hex[:8]}")
    seen: int = 0

    async def deliver(self, handler: handlers.Handler, payload: object) -> None:
        async with self.service.unit_of_work() as uow:
            await handler(delivered(payload), uow)  # type: ignore[arg-type]
            await uow.commit()

    async def import_debtor(
        self, debtor_id: str, due_on: date, balance: int, time_zone: str = "America/Mexico_City"
    ) -> None:
        await self.deliver(
            handlers.debt_imported_handler(self.clock, self.rules),
            DebtImported(
                tenant_id=self.tenant,
                debtor_id=debtor_id,
                import_id=uuid4(),
                as_of=self.clock() - timedelta(minutes=5),
                contact=ContactDetails(name="Rosa Díaz", country="MX", time_zone=time_zone),
                documents=[
                    DebtDocument(
                        document_id="C-1",
                        kind=DocumentKind.INSTALLMENT,
                        due_on=due_on,
                        amount=Money(amount_minor=balance, currency="MXN"),
                    )
                ],
                balance=Money(amount_minor=balance, currency="MXN"),
                oldest_due_on=due_on,
                change="new",
            ),
        )

    async def pay(self, debtor_id: str, amount: int) -> None:
        await self.deliver(
            handlers.payment_received_handler(self.clock, self.rules),
            PaymentReceived(
                tenant_id=self.tenant,
                debtor_id=debtor_id,
                payment_id=uuid4(),
                amount=Money(amount_minor=amount, currency="MXN"),
                method="bank_transfer",
                received_at=self.clock(),
            ),
        )

    async def promise(self, debtor_id: str) -> UUID:
        promise_id = uuid4()
        await self.deliver(
            handlers.promise_registered_handler(self.clock, self.rules),
            PromiseRegistered(
                tenant_id=self.tenant,
                debtor_id=debtor_id,
                promise_id=promise_id,
                amount=Money(amount_minor=10_000, currency="MXN"),
                promised_on=(self.clock() + timedelta(days=5)).date(),
                source="portal",
                registered_at=self.clock(),
            ),
        )
        return promise_id

    async def sweep(self) -> int:
        return await handlers.sweep_aging(self.service.unit_of_work, self.rules, self.clock())

    async def new_events(self) -> list[DebtorSegmented]:
        """`debtor-segmented` events written since the last call."""
        async with self.service.unit_of_work() as uow:
            rows = await uow.session.execute(
                text(
                    "SELECT event_id::text, debtor_id, batch_events, value FROM segmenter.outbox"
                    " WHERE tenant_id = :t AND topic = 'debtor-segmented' ORDER BY id"
                ),
                {"t": self.tenant},
            )
            events = [
                DebtorSegmented.model_validate_json(payload)
                for row in rows
                for _, _, payload in events_of(*row)
            ][self.seen :]
        self.seen += len(events)
        return events

    async def activate(self, document: dict[str, object]) -> None:
        async with self.service.unit_of_work() as uow:
            version = await uow.repo.add_ruleset(self.tenant, document, "test", self.clock())
            await uow.commit()
        await handlers.activate(
            self.service.unit_of_work, self.rules, self.tenant, version, self.clock, 100
        )


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    clock = Clock()
    settings = SegmenterSettings(database_url=database_url, log_level="WARNING")
    service, app = bootstrap(settings, clock=clock)
    await upgrade_schema(service.engine, service._migrations, "segmenter")
    yield World(service, app.state.rules, clock)
    await service.engine.dispose()


async def test_a_debtor_walks_through_every_bucket_as_days_pass(world: World) -> None:
    due = date(2026, 1, 13)  # three days ahead: not yet due
    await world.import_debtor("W1", due, 500_000)
    [placed] = await world.new_events()
    assert (placed.segment, placed.stage, placed.days_past_due) == ("pre-mora", "preventive", -3)

    moves: list[tuple[int, str, str, str | None, str]] = []
    for _ in range(200):
        world.clock.advance(days=1)
        await world.sweep()
        moves += [
            (e.days_past_due, e.segment, e.stage.value, e.previous_segment, e.reason)
            for e in await world.new_events()
        ]
    assert [move[:4] for move in moves] == [
        (1, "1-30", "administrative", "pre-mora"),
        (31, "31-60", "administrative", "1-30"),
        (61, "61-90", "administrative", "31-60"),
        (91, "91-180", "extrajudicial", "61-90"),
        (181, "180+", "judicial", "91-180"),
    ]
    assert moves[1][4] == "rule '31-60': 31 <= days_past_due <= 60"
    async with world.service.unit_of_work() as uow:
        rows = await uow.repo.history(world.tenant, "W1")
    assert [row["trigger"] for row in rows] == ["aging"] * 5 + ["debt-imported"]
    assert {row["ruleset_version"] for row in rows} == {"default-1"}


async def test_the_aging_worker_runs_a_month_on_an_injected_clock(world: World) -> None:
    await world.import_debtor("M1", date(2026, 1, 1), 80_000)  # 9 days past due
    await world.new_events()

    class MonthOver(Exception):
        pass

    days = 0

    async def next_day(_: float) -> None:
        nonlocal days
        days += 1
        if days == 31:
            raise MonthOver
        world.clock.advance(days=1)

    worker = handlers.aging_worker(
        world.service.unit_of_work, world.rules, world.clock, 60.0, 100, next_day
    )
    with pytest.raises(MonthOver):
        await worker()
    [moved] = await world.new_events()
    assert (moved.segment, moved.days_past_due, moved.evaluated_at.date()) == (
        "31-60",
        31,
        date(2026, 2, 1),
    )


async def test_each_debtor_ages_at_its_own_midnight(world: World) -> None:
    due = date(2026, 1, 10)
    await world.import_debtor("MX", due, 1000, "America/Mexico_City")
    await world.import_debtor("NZ", due, 1000, "Pacific/Auckland")  # already Jan 11 there
    placed = {e.debtor_id: e.segment for e in await world.new_events()}
    assert placed == {"MX": "pre-mora", "NZ": "1-30"}

    world.clock.now = datetime(2026, 1, 11, 3, tzinfo=UTC)  # 21:00 in Mexico City
    await world.sweep()
    assert await world.new_events() == []
    world.clock.now = datetime(2026, 1, 11, 6, 1, tzinfo=UTC)  # 00:01 in Mexico City
    assert await world.sweep() == 1
    [moved] = await world.new_events()
    assert (moved.debtor_id, moved.segment, moved.days_past_due) == ("MX", "1-30", 1)
    assert await world.sweep() == 0  # the same local day is swept once


async def test_payments_move_the_debtor_at_once_and_settle_it(world: World) -> None:
    await world.import_debtor("P1", date(2025, 11, 20), 300_000)  # 51 days past due
    await world.new_events()

    await world.pay("P1", 100_000)
    [partial] = await world.new_events()
    assert (partial.segment, partial.balance.amount_minor) == ("31-60", 200_000)
    assert partial.snapshot_balance.amount_minor == 300_000

    world.clock.advance(days=3)
    await world.pay("P1", 200_000)
    [settled] = await world.new_events()
    assert (settled.segment, settled.stage, settled.previous_segment) == (
        "settled",
        CollectionStage.SETTLED,
        "31-60",
    )
    assert settled.reason == "rule 'settled': balance <= 0"
    for _ in range(40):
        world.clock.advance(days=1)
        await world.sweep()
    assert await world.new_events() == []  # a settled debtor does not age


async def test_promises_and_messages_feed_the_rules(world: World) -> None:
    await world.activate(AGING_BY_AMOUNT_DOCUMENT)
    await world.import_debtor("R1", date(2025, 12, 20), 90_000)  # 21 days past due, small
    [placed] = await world.new_events()
    assert placed.segment == "1-30-small"

    promise_id = await world.promise("R1")
    [promised] = await world.new_events()
    assert (promised.segment, promised.strategy, promised.ruleset_version) == (
        "promised",
        "promise-follow-up",
        "v1",
    )
    assert promised.reason == (
        "rule 'promised': days_since_last_promise <= 7 and promises_broken == 0"
    )

    # A week and a day later the promise is old news: the sweep puts the debtor back by age.
    for _ in range(8):
        world.clock.advance(days=1)
        await world.sweep()
    [aged] = await world.new_events()
    assert (aged.previous_segment, aged.segment, aged.days_past_due) == (
        "promised",
        "1-30-small",
        29,
    )

    # A new promise counts only while none was broken.
    async with world.service.unit_of_work() as uow:
        await handlers.record_promise_outcome(
            uow, world.rules, world.tenant, promise_id, False, world.clock(), world.clock()
        )
        await uow.commit()
    await world.promise("R1")
    assert await world.new_events() == []

    await world.deliver(
        handlers.message_sent_handler(world.clock, world.rules),
        MessageSent(
            tenant_id=world.tenant,
            debtor_id="R1",
            action_id=uuid4(),
            channel=Channel.WHATSAPP,
            provider="whatsapp-cloud",
            provider_message_id="wamid.1",
            template="reminder",
            sent_at=world.clock(),
        ),
    )
    async with world.service.unit_of_work() as uow:
        debtor = await uow.repo.debtor(world.tenant, "R1")
    assert debtor is not None
    assert (debtor["promises_made"], debtor["promises_broken"], debtor["actions_count"]) == (
        2,
        1,
        1,
    )
    facts = handlers.describe_facts(debtor, world.clock())
    assert (facts["days_since_last_contact"], facts["last_contact_channel"]) == (0, "whatsapp")

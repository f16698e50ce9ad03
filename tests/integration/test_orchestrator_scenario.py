"""A month of one debtor's life under tenant strategies, on a simulated clock, against a real
PostgreSQL and Kafka: the handlers and the scheduler run in-process at chosen instants; the outbox
relay publishes to Kafka, where the test reads what went out.

Two stages (early digital, then letters and a field visit), a WhatsApp that is never delivered
(SMS fallback), an agent call that ends in a promise, the promise broken, a weekend that moves an
action, a partial payment and a final one that closes the case.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from recupero_events import (
    ActionDue,
    CollectionStage,
    ContactDetails,
    DebtorSegmented,
    EventPayload,
    MessageSent,
    MessageStatus,
    MessageStatusChanged,
    Money,
    PaymentReceived,
    PostalAddress,
    PromiseRegistered,
    PromiseResolved,
    decode,
)
from recupero_orchestrator import handlers
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.bootstrap import bootstrap
from recupero_orchestrator.entrypoints.scheduler import run_once
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.auth import hash_api_key
from recupero_runtime.consumer import Handler
from recupero_runtime.db import upgrade_schema
from recupero_runtime.kafka import Publisher
from recupero_runtime.service import Service
from tests.kafka_reading import of_tenant, read_topics
from tests.unit.fakes import delivered

pytestmark = pytest.mark.integration

DEBTOR = "C-77"
EARLY = {
    "strategy_id": "early",
    "version": 1,
    "name": "Early digital",
    "segments": ["1-30"],
    "steps": [
        {
            "step_id": "hello",
            "timing": {"anchor": "segment_entry", "days": 0, "local_time": "10:00"},
            "channel": "whatsapp",
            "template": "first-reminder",
            "fallback": {"channels": ["sms"], "when": "not_delivered", "within_hours": 24},
        },
        {
            "step_id": "call",
            "timing": {"anchor": "previous_step", "days": 3},
            "channel": "agent_call",
            "template": "call-script",
        },
    ],
    "reactions": {"promise_grace_days": 2, "on_broken_promise": "hand_to_agent"},
}
LATE = {
    "strategy_id": "late",
    "version": 1,
    "name": "Letters and visits",
    "segments": ["31-60"],
    "steps": [
        {
            "step_id": "letter",
            "timing": {"anchor": "segment_entry", "days": 0},
            "channel": "letter",
            "template": "formal-letter",
        },
        {
            "step_id": "visit",
            "timing": {"anchor": "previous_step", "days": 5},
            "channel": "field_visit",
            "template": "visit-script",
        },
    ],
}


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Orchestrator:
    service: Service[OrchestratorRepository]
    client: httpx.AsyncClient
    clock: SimulatedClock
    tenant_id: str
    kafka_bootstrap: str

    async def handle(self, handler: Handler, payload: EventPayload) -> None:
        """What the consumer does with one message, in one transaction."""
        async with self.service.unit_of_work() as uow:
            await handler(delivered(payload), uow)
            await uow.commit()

    async def activate(self, document: dict[str, Any]) -> None:
        """Upload a strategy version through the API and make it the active one."""
        url = f"/v1/strategies/{document['strategy_id']}/versions/{document['version']}"
        assert (await self.client.put(url, json=document)).status_code == 200
        assert (await self.client.post(f"{url}/activate")).json()["status"] == "active"

    async def at(self, instant: datetime) -> None:
        """Move the clock and let the scheduler do what is due."""
        self.clock.now = instant
        await run_once(self.service, instant, 100)

    async def query(self, sql: str) -> list[dict[str, Any]]:
        async with self.service.unit_of_work() as uow:
            result = await uow.session.execute(text(sql), {"t": self.tenant_id, "d": DEBTOR})
            return [dict(row._mapping) for row in result]

    async def published(self, topic: str) -> list[Any]:
        """This tenant's events on a Kafka topic, once the relay has sent everything."""
        while await self.query("SELECT 1 FROM orchestrator.outbox WHERE tenant_id = :t"):
            await asyncio.sleep(0.05)
        records = of_tenant(
            (await read_topics(self.kafka_bootstrap, [topic]))[topic], self.tenant_id
        )
        records.sort(key=lambda r: (r.partition, r.offset))
        return [decode(r.topic, r.value, r.headers).payload for r in records]


@pytest.fixture
async def orchestrator(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Orchestrator]:
    tenant = f"bank-{uuid4().hex[:8]}"
    settings = OrchestratorSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys={hash_api_key("k"): tenant},
        log_level="WARNING",
    )
    clock = SimulatedClock(datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
    service, app = bootstrap(settings, clock)
    await upgrade_schema(service.engine, service._migrations, service.schema.name)
    # Only the relay runs in the background: the consumers' and the scheduler's work is driven
    # by the test, at instants of its choosing.
    publisher = Publisher(kafka_bootstrap)
    relay = asyncio.create_task(service.relay.run(publisher))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://orchestrator",
            headers={"Authorization": "Bearer k"},
        ) as client:
            yield Orchestrator(service, client, clock, tenant, kafka_bootstrap)
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await publisher.close()
        await service.engine.dispose()


# Where the creditor says the debtor lives; it arrives with the second import.
ADDRESS = PostalAddress(
    street_lines=["Av. Insurgentes Sur 1602, int. 4", "Col. Crédito Constructor"],
    city="Ciudad de México",
    region="CDMX",
    postal_code="03940",
    country="MX",
)


def segmented(
    tenant_id: str,
    segment: str,
    strategy: str,
    days_past_due: int,
    at: datetime,
    address: PostalAddress | None = None,
) -> DebtorSegmented:
    stage = CollectionStage.ADMINISTRATIVE if days_past_due <= 30 else CollectionStage.EXTRAJUDICIAL
    return DebtorSegmented(
        tenant_id=tenant_id,
        debtor_id=DEBTOR,
        segment=segment,
        stage=stage,
        strategy=strategy,
        days_past_due=days_past_due,
        balance=Money(amount_minor=250_000, currency="MXN"),
        snapshot_balance=Money(amount_minor=250_000, currency="MXN"),
        snapshot_as_of=datetime(2026, 11, 1, tzinfo=UTC),
        oldest_due_on=date(2026, 10, 21),
        contact=ContactDetails(
            name="Ana Pérez",
            email="ana@example.com",
            phone="+5215512345678",
            country="MX",
            time_zone="America/Mexico_City",
            postal_address=address,
        ),
        ruleset_version="rules-1",
        reason=f"rule {segment!r}",
        evaluated_at=at,
    )


def payment(tenant_id: str, amount_minor: int, at: datetime) -> PaymentReceived:
    return PaymentReceived(
        tenant_id=tenant_id,
        debtor_id=DEBTOR,
        payment_id=uuid4(),
        amount=Money(amount_minor=amount_minor, currency="MXN"),
        method="bank_transfer",
        received_at=at,
    )


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


async def test_a_month_of_a_debtors_life(orchestrator: Orchestrator) -> None:
    o, tenant = orchestrator, orchestrator.tenant_id
    clock = o.clock
    for document in (EARLY, LATE):
        await o.activate(document)

    # Mon 2 Nov, 09:00 in Mexico City: the debtor enters 1-30; the WhatsApp is due at 10:00.
    await o.handle(
        handlers.debtor_segmented_handler(clock, _timing()),
        segmented(tenant, "1-30", "early", 12, clock.now),
    )
    await o.at(utc(11, 2, 16))
    hello = await o.query(
        "SELECT action_id FROM orchestrator.scheduled_actions "
        "WHERE tenant_id = :t AND step_id = 'hello' AND attempt = 0"
    )
    sent = MessageSent(
        tenant_id=tenant,
        debtor_id=DEBTOR,
        action_id=hello[0]["action_id"],
        channel="whatsapp",
        provider="whatsapp-cloud",
        provider_message_id="wamid.1",
        template="first-reminder",
        sent_at=utc(11, 2, 16, 1),
    )
    await o.handle(handlers.message_sent_handler(clock), sent)

    # Never delivered: 24 hours later the same step goes out on SMS, which is delivered.
    await o.at(utc(11, 3, 16, 0))
    assert await _pending(o) == [("hello", 1, "sms", utc(11, 3, 16, 1))]
    await o.at(utc(11, 3, 16, 1))
    sms = await o.query(
        "SELECT action_id FROM orchestrator.scheduled_actions "
        "WHERE tenant_id = :t AND step_id = 'hello' AND attempt = 1 AND status = 'fired'"
    )
    await o.handle(
        handlers.message_status_changed_handler(clock),
        MessageStatusChanged(
            tenant_id=tenant,
            debtor_id=DEBTOR,
            action_id=sms[0]["action_id"],
            channel="sms",
            status=MessageStatus.DELIVERED,
            occurred_at=utc(11, 3, 16, 2),
        ),
    )

    # Thu 5 Nov, three days after the first message: an agent call, as a task in a work queue.
    await o.at(utc(11, 5, 16))
    task = (await o.client.post("/v1/agents/ag-1/next-task")).json()
    # Priority: the balance weighted by a propensity score, 50 while the score is unknown.
    assert (task["skill"], task["queue"], task["priority"]) == (
        "agent_call",
        "administrative",
        125_000,
    )
    assert (await o.client.post("/v1/agents/ag-2/next-task")).status_code == 204
    outcome = await o.client.post(
        f"/v1/agent-tasks/{task['task_id']}/outcome",
        json={
            "agent_id": "ag-1",
            "outcome": "promise",
            "promise": {
                "amount": {"amount_minor": 150_000, "currency": "MXN"},
                "promised_on": "2026-11-12",
            },
        },
    )
    assert outcome.status_code == 200, outcome.text
    # The promise comes back from Kafka like any other, and pauses the strategy.
    (promise,) = await o.published("promise-registered")
    assert isinstance(promise, PromiseRegistered) and promise.source == "agent"
    await o.handle(handlers.promise_registered_handler(clock), promise)
    assert await _plan_status(o) == "paused"

    # Nothing paid by Thu 12 Nov plus two days' grace: broken at midnight, Mexico City time.
    await o.at(utc(11, 15, 5, 59))
    assert await _plan_status(o) == "paused"
    await o.at(utc(11, 15, 6, 0))
    (resolved,) = await o.published("promise-resolved")
    assert isinstance(resolved, PromiseResolved)
    assert (resolved.outcome, resolved.paid.amount_minor) == ("broken", 0)
    assert await _plan_status(o) == "stopped"
    tasks = await o.query(
        "SELECT template, status FROM orchestrator.agent_tasks WHERE tenant_id = :t "
        "ORDER BY created_at"
    )
    assert tasks == [
        {"template": "call-script", "status": "done"},
        {"template": "promise-broken", "status": "open"},
    ]

    # Sat 21 Nov: 31 days past due, the next stage and its strategy. The letter would go out on
    # a Saturday: Mexico's rules move it to Monday 07:00.
    clock.now = utc(11, 21, 15)
    await o.handle(
        handlers.debtor_segmented_handler(clock, _timing()),
        segmented(tenant, "31-60", "late", 31, clock.now, ADDRESS),
    )
    await o.at(utc(11, 21, 16))
    assert await _pending(o) == [("letter", 0, "letter", utc(11, 23, 13))]
    await o.at(utc(11, 23, 13))

    # A partial payment: the strategy goes on with the new balance.
    await o.handle(
        handlers.payment_received_handler(clock), payment(tenant, 100_000, utc(11, 25, 18))
    )
    assert await _plan_status(o) == "active"
    # The visit is five days after the letter, a Saturday again: moved to Monday, then a task.
    assert await _pending(o) == [("visit", 0, "field_visit", utc(11, 28, 16))]
    await o.at(utc(11, 28, 16))
    await o.at(utc(11, 30, 13))
    visit = await o.query(
        "SELECT skill, priority, status FROM orchestrator.agent_tasks "
        "WHERE tenant_id = :t AND skill = 'field_visit'"
    )
    # Balance 150,000 at the neutral propensity score of 50.
    assert visit == [{"skill": "field_visit", "priority": 75_000, "status": "open"}]

    # The final payment closes the case and cancels what was still to do, agents' work included.
    await o.handle(
        handlers.payment_received_handler(clock), payment(tenant, 150_000, utc(12, 1, 17))
    )
    case = (await o.client.get(f"/v1/cases/{DEBTOR}")).json()
    assert (case["status"], case["closed_reason"]) == ("closed", "balance settled")
    open_tasks = await o.query(
        "SELECT 1 FROM orchestrator.agent_tasks WHERE tenant_id = :t AND status = 'open'"
    )
    assert open_tasks == []

    # What went out, and why (or why not), as a supervisor sees it.
    due = await o.published("action-due")
    assert all(isinstance(event, ActionDue) for event in due)
    assert [(e.channel, e.template, e.balance.amount_minor) for e in due] == [
        ("whatsapp", "first-reminder", 250_000),
        ("sms", "first-reminder", 250_000),
        ("letter", "formal-letter", 250_000),
    ]
    # The case keeps the debtor's latest contact: the letter goes to the address that came
    # with the second import.
    assert [e.contact.postal_address for e in due] == [None, None, ADDRESS]
    decisions = (await o.client.get(f"/v1/debtors/{DEBTOR}/contact-decisions")).json()
    verdicts = [(d["channel"], d["verdict"], d["rule_id"]) for d in decisions]
    assert verdicts == [
        ("whatsapp", "allowed", "allowed"),
        ("sms", "allowed", "allowed"),
        ("agent_call", "allowed", "allowed"),
        ("letter", "moved", "mx.contact-hours"),
        ("letter", "allowed", "allowed"),
        ("field_visit", "moved", "mx.contact-hours"),
        ("field_visit", "allowed", "allowed"),
    ]
    moved = decisions[3]
    assert moved["moved_to"] == "2026-11-23T13:00:00Z"
    assert "Saturday" in moved["reason"]
    completed = await o.published("agent-task-completed")
    assert [(e.agent_id, e.outcome) for e in completed] == [("ag-1", "promise")]


def _timing() -> handlers.StrategyTiming:
    return handlers.StrategyTiming(first_delay=timedelta(0), reminder_interval=timedelta(days=3))


async def _pending(o: Orchestrator) -> list[tuple[str, int, str, datetime]]:
    rows = await o.query(
        "SELECT step_id, attempt, channel, due_at FROM orchestrator.scheduled_actions "
        "WHERE tenant_id = :t AND status = 'pending' ORDER BY due_at"
    )
    return [(r["step_id"], r["attempt"], r["channel"], r["due_at"]) for r in rows]


async def _plan_status(o: Orchestrator) -> str:
    rows = await o.query("SELECT plan_status FROM orchestrator.cases WHERE tenant_id = :t")
    return str(rows[0]["plan_status"])

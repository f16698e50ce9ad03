"""Planning the day in bulk (`day_plan.plan_day`) stores the schedule that planning each debtor one
by one (`planning.replan`) stores, on a real PostgreSQL: two databases are seeded alike with debtors
on three strategies (fallbacks, conditions, due-date steps that are skipped, promises open and
broken, a balance that calls for an agent, an opt-out, several countries and time zones), one is
planned in bulk and the other debtor by debtor, and the schedules, decisions, plan statuses and
agent tasks are compared. The one thing planning the day adds: a step due within the day sits on
the contact policy's first allowed slot, with the decision that moved it recorded."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from recupero_orchestrator import planning
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.bootstrap import bootstrap
from recupero_orchestrator.day_plan import plan_day
from recupero_orchestrator.domain.strategies import parse_strategy
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.auth import hash_api_key
from recupero_runtime.db import upgrade_schema
from recupero_runtime.service import Service
from tests.conftest import create_database

pytestmark = pytest.mark.integration

TENANT = "bank-day-plan"
# A Wednesday, 04:00 UTC: night in Mexico, Colombia, Argentina and New York (steps due by now
# move to the morning), still evening in Los Angeles (allowed as they are).
NOW = datetime(2026, 11, 4, 4, 0, tzinfo=UTC)

EARLY = parse_strategy(
    {
        "strategy_id": "early",
        "version": 1,
        "name": "Early digital",
        "steps": [
            {
                "step_id": "whatsapp",
                "timing": {"anchor": "segment_entry", "local_time": "09:00"},
                "channel": "whatsapp",
                "template": "first-reminder",
                "fallback": {"channels": ["sms"], "within_hours": 24},
            },
            {
                "step_id": "email",
                "timing": {"anchor": "previous_step", "days": 2},
                "channel": "email",
                "template": "payment-reminder",
                "when": [{"kind": "no_open_promise"}],
            },
            {
                "step_id": "sms",
                "timing": {"anchor": "previous_step", "days": 5},
                "channel": "sms",
                "template": "last-reminder",
            },
        ],
        "repeat": {"from_step": "whatsapp", "every_days": 10, "max_rounds": 1},
        "reactions": {"promise_grace_days": 2},
    }
)
LATE = parse_strategy(
    {
        "strategy_id": "late",
        "version": 1,
        "name": "Letters and calls",
        "steps": [
            {
                "step_id": "letter",
                "timing": {"anchor": "segment_entry", "days": 0},
                "channel": "letter",
                "template": "formal-letter",
            },
            {
                "step_id": "call",
                "timing": {"anchor": "previous_step", "days": 2},
                "channel": "agent_call",
                "template": "call-script",
            },
        ],
        "reactions": {
            "agent_task_when_balance_above": {"amount_minor": 800_000, "currency": "MXN"},
            "promise_grace_days": 1,
            "on_broken_promise": "hand_to_agent",
        },
    }
)
AROUND_DUE_DATE = parse_strategy(
    {
        "strategy_id": "around-due-date",
        "version": 1,
        "name": "Around the due date",
        "steps": [
            {
                "step_id": "before",
                "timing": {"anchor": "due_date", "days": -3},
                "channel": "email",
                "template": "first-reminder",
            },
            {
                "step_id": "on",
                "timing": {"anchor": "due_date", "days": 0},
                "channel": "sms",
                "template": "first-reminder",
            },
            {
                "step_id": "after",
                "timing": {"anchor": "due_date", "days": 5},
                "channel": "whatsapp",
                "template": "second-reminder",
                "when": [{"kind": "days_past_due_at_least", "days": 3}],
            },
        ],
    }
)
STRATEGIES = {s.strategy_id: s for s in (EARLY, LATE, AROUND_DUE_DATE)}
ZONES = {
    "MX": "America/Mexico_City",
    "CO": "America/Bogota",
    "AR": "America/Argentina/Buenos_Aires",
    "PE": "America/Lima",
}
CURRENCIES = {"MX": "MXN", "CO": "COP", "AR": "ARS", "PE": "PEN", "US": "USD"}


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


class Portfolio:
    """Rows for both databases: cases, their past actions and contacts, promises, payments and
    opt-outs."""

    def __init__(self) -> None:
        self.cases: list[tuple[Any, ...]] = []
        self.actions: list[tuple[Any, ...]] = []
        self.contacts: list[tuple[Any, ...]] = []
        self.promises: list[tuple[Any, ...]] = []
        self.payments: list[tuple[Any, ...]] = []
        self.opt_outs: list[tuple[Any, ...]] = []

    def case(
        self,
        debtor_id: str,
        strategy: str | None,
        country: str,
        entered: datetime,
        *,
        zone: str | None = None,
        balance: int = 250_000,
        oldest_due_on: date = date(2026, 10, 20),
        days_past_due: int = 15,
        status: str = "open",
    ) -> None:
        contact = {
            "name": f"Debtor {debtor_id}",
            "email": f"{debtor_id.lower()}@example.com",
            "phone": "+5215512345678",
            "country": country,
            "time_zone": zone or ZONES[country],
        }
        self.cases.append(
            (TENANT, debtor_id, json.dumps(contact), "any", "administrative", days_past_due,
             oldest_due_on, balance, CURRENCIES[country], utc(10, 1, 0), status, strategy,
             None if strategy is None else 1, entered, utc(10, 1, 0))
        )  # fmt: skip

    def happened(
        self,
        debtor_id: str,
        strategy: str,
        entered: datetime,
        step: str,
        channel: str,
        at: datetime,
        delivery: str,
        attempt: int = 0,
    ) -> None:
        """A step that went out (and the contact it made)."""
        key = f"{STRATEGIES[strategy].reference}/{entered:%Y%m%dT%H%M%SZ}/{step}/0/{attempt}"
        action_id = uuid4()
        self.actions.append(
            (action_id, TENANT, debtor_id, key, "contact", f"{strategy}@1/{step}", step, 0,
             attempt, channel, "first-reminder", at, at, "fired", at, at, delivery)
        )  # fmt: skip
        self.contacts.append((uuid4(), TENANT, debtor_id, channel, at, False, action_id))

    def promise(
        self, debtor_id: str, promised_on: date, registered: datetime, deadline: datetime
    ) -> None:
        self.promises.append(
            (TENANT, uuid4(), debtor_id, 100_000, "MXN" if debtor_id != "E4" else "COP",
             promised_on, "portal", registered, deadline, "pending", None)
        )  # fmt: skip


def portfolio() -> Portfolio:
    p = Portfolio()
    # Entered yesterday at 09:00: its WhatsApp of 09:00 is due, but it is 22:00 in Mexico City.
    p.case("E1", "early", "MX", utc(11, 3, 15))
    # The same in Los Angeles, where it is 20:00: allowed as planned.
    p.case("E2", "early", "US", utc(11, 3, 18), zone="America/Los_Angeles")
    # WhatsApp delivered a week ago: the e-mail two days later is due (23:00 in Bogota).
    p.case("E3", "early", "CO", utc(10, 28, 15))
    p.happened(
        "E3", "early", utc(10, 28, 15), "whatsapp", "whatsapp", utc(10, 28, 15, 30), "delivered"
    )
    # The same with an open promise: the strategy is paused.
    p.case("E4", "early", "CO", utc(10, 28, 15))
    p.happened(
        "E4", "early", utc(10, 28, 15), "whatsapp", "whatsapp", utc(10, 28, 15, 30), "delivered"
    )
    p.promise("E4", date(2026, 11, 10), utc(11, 2, 15), utc(11, 13, 5))
    # WhatsApp sent but never delivered: the SMS fallback 24 hours later is due (01:00 there).
    p.case("E5", "early", "AR", utc(11, 2, 12))
    p.happened("E5", "early", utc(11, 2, 12), "whatsapp", "whatsapp", utc(11, 2, 13), "sent")
    # Opted out of WhatsApp: the contact policy would drop the step, so it stays as planned.
    p.case("E6", "early", "MX", utc(11, 3, 15))
    p.opt_outs.append((TENANT, "E6", "whatsapp", utc(10, 1, 0)))
    # A letter: no contact rule applies to it.
    p.case("L1", "late", "MX", utc(11, 1, 15), balance=500_000)
    # A balance above the strategy's threshold: an agent task (planned one by one).
    p.case("L2", "late", "MX", utc(11, 1, 15), balance=900_000)
    # A promise broken a week ago: handed to an agent (planned one by one).
    p.case("L3", "late", "MX", utc(10, 18, 15))
    p.promise("L3", date(2026, 10, 25), utc(10, 20, 15), utc(10, 27, 6))
    # Entered after its pre-due-date reminder: skipped, which unlocks the due-date SMS.
    p.case("D1", "around-due-date", "US", utc(10, 31, 15), zone="America/New_York",
           oldest_due_on=date(2026, 11, 1), days_past_due=2)  # fmt: skip
    # The next step is days away: beyond today's horizon, stored at the planner's time.
    p.case("D2", "around-due-date", "US", utc(10, 20, 15), zone="America/Chicago",
           oldest_due_on=date(2026, 11, 1), days_past_due=2)  # fmt: skip
    p.payments.append((TENANT, uuid4(), "D2", 100_000, "USD", utc(11, 1, 18)))
    for step, channel, at in (("before", "email", utc(10, 29, 15)), ("on", "sms", utc(11, 1, 15))):
        p.happened("D2", "around-due-date", utc(10, 20, 15), step, channel, at, "delivered")
    # Neither planner touches a closed case or one on the default plan.
    p.case("X1", "early", "MX", utc(11, 3, 15), status="closed")
    p.case("X2", None, "MX", utc(11, 3, 15))
    return p


async def seed(dsn: str, p: Portfolio) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for strategy in STRATEGIES.values():
            await connection.execute(
                "INSERT INTO orchestrator.strategy_versions (tenant_id, strategy_id, version,"
                " document, status, activated_at) VALUES ($1, $2, 1, $3::jsonb, 'active', $4)",
                TENANT,
                strategy.strategy_id,
                strategy.model_dump_json(),
                utc(10, 1, 0),
            )
        await connection.executemany(
            "INSERT INTO orchestrator.cases (tenant_id, debtor_id, contact, segment, stage,"
            " days_past_due, oldest_due_on, snapshot_balance_minor, currency, snapshot_as_of,"
            " status, strategy_id, strategy_version, segment_entered_at, opened_at)"
            " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            p.cases,
        )
        for table, rows, columns in (
            ("scheduled_actions", p.actions,
             "action_id, tenant_id, debtor_id, action_key, kind, strategy, step_id, round,"
             " attempt, channel, template, due_at, planned_at, status, fired_at, happened_at,"
             " delivery"),
            ("contact_history", p.contacts,
             "contact_id, tenant_id, debtor_id, channel, contacted_at, conversation, action_id"),
            ("promises", p.promises,
             "tenant_id, promise_id, debtor_id, amount_minor, currency, promised_on, source,"
             " registered_at, deadline, status, strategy_id"),
            ("payments", p.payments,
             "tenant_id, payment_id, debtor_id, amount_minor, currency, received_at"),
            ("opt_outs", p.opt_outs, "tenant_id, debtor_id, channel, opted_out_at"),
        ):  # fmt: skip
            if rows:
                marks = ", ".join(f"${n}" for n in range(1, len(rows[0]) + 1))
                await connection.executemany(
                    f"INSERT INTO orchestrator.{table} ({columns}) VALUES ({marks})", rows
                )
    finally:
        await connection.close()


async def orchestrator(database_url: str) -> Service[OrchestratorRepository]:
    service, _ = await orchestrator_and_api(database_url)
    return service


async def orchestrator_and_api(
    database_url: str,
) -> tuple[Service[OrchestratorRepository], FastAPI]:
    """The orchestrator on its clock at `NOW`, its schema migrated; API key "k" is `TENANT`'s."""
    settings = OrchestratorSettings(
        database_url=database_url,
        kafka_bootstrap_servers="127.0.0.1:9",
        api_keys={hash_api_key("k"): TENANT},
        log_level="WARNING",
    )
    service, app = bootstrap(settings, lambda: NOW)
    await upgrade_schema(service.engine, service._migrations, service.schema.name)
    return service, app


def dsn_of(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


async def fetch(dsn: str, sql: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(dsn)
    try:
        return [dict(row) for row in await connection.fetch(sql, TENANT)]
    finally:
        await connection.close()


@pytest.fixture
async def two_databases(
    database_url: str, database_server_url: str
) -> AsyncIterator[tuple[str, str]]:
    yield database_url, await create_database(database_server_url)


SCHEDULE = (
    "SELECT debtor_id, action_key, kind, strategy, step_id, round, attempt, channel, template,"
    " due_at, expires_at, status, status_reason, happened_at FROM orchestrator.scheduled_actions"
    " WHERE tenant_id = $1 AND planned_at = '2026-11-04T04:00:00Z'"
)
DECISIONS = (
    "SELECT debtor_id, action_key, channel, verdict, rule_id, reason, requested_at, moved_to"
    " FROM orchestrator.contact_decisions WHERE tenant_id = $1"
)
PLANS = "SELECT debtor_id, plan_status, plan_reason FROM orchestrator.cases WHERE tenant_id = $1"
TASKS = (
    "SELECT debtor_id, queue, skill, priority, template, reason, status"
    " FROM orchestrator.agent_tasks WHERE tenant_id = $1"
)


@pytest.mark.parametrize(
    ("parts", "processes"),
    [(1, 1), (3, 2)],  # one process; three key ranges shared by this process and another
)
async def test_planning_the_day_stores_what_planning_each_debtor_stores(
    two_databases: tuple[str, str], parts: int, processes: int
) -> None:
    bulk_url, one_by_one_url = two_databases
    bulk, one_by_one = await orchestrator(bulk_url), await orchestrator(one_by_one_url)
    try:
        debtors = portfolio()
        for url in two_databases:
            await seed(dsn_of(url), debtors)

        report = await plan_day(bulk, NOW, chunk_size=2, parts=parts, processes=processes)
        for debtor_id in [case[1] for case in debtors.cases]:
            async with one_by_one.unit_of_work() as uow:
                await planning.replan(uow, TENANT, debtor_id, NOW)
                await uow.commit()
    finally:
        await bulk.engine.dispose()
        await one_by_one.engine.dispose()

    bulk_dsn, one_dsn = dsn_of(bulk_url), dsn_of(one_by_one_url)
    planned = {(r["debtor_id"], r["action_key"]): r for r in await fetch(bulk_dsn, SCHEDULE)}
    expected = {(r["debtor_id"], r["action_key"]): r for r in await fetch(one_dsn, SCHEDULE)}
    bulk_decisions = await fetch(bulk_dsn, DECISIONS)
    moves = {
        (d["debtor_id"], d["action_key"]): d for d in bulk_decisions if d["verdict"] == "moved"
    }

    assert set(planned) == set(expected)
    for key, row in expected.items():
        got = planned[key]
        if key in moves:
            # Placed by the contact policy on the slot firing would have moved it to.
            move = moves[key]
            assert move["requested_at"] == max(row["due_at"], NOW)
            assert got["due_at"] == move["moved_to"] > row["due_at"]
            got = {**got, "due_at": row["due_at"]}
        assert got == row, key

    def without_moves(decisions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (d["debtor_id"], d["action_key"], d["verdict"], d["rule_id"], d["reason"])
            for d in decisions
            if d["verdict"] != "moved"
        )

    assert without_moves(bulk_decisions) == without_moves(await fetch(one_dsn, DECISIONS))
    by_debtor = {r["debtor_id"]: r for r in await fetch(bulk_dsn, PLANS)}
    assert by_debtor == {r["debtor_id"]: r for r in await fetch(one_dsn, PLANS)}
    tasks = sorted(tuple(t.values()) for t in await fetch(bulk_dsn, TASKS))
    assert tasks == sorted(tuple(t.values()) for t in await fetch(one_dsn, TASKS))

    # What the portfolio was built to show, as a supervisor would read it.
    statuses = {
        debtor: (row["plan_status"], row["plan_reason"]) for debtor, row in by_debtor.items()
    }
    assert statuses["E4"][0] == "paused" and statuses["L3"][0] == "stopped"
    assert statuses["X1"] == statuses["X2"] == (None, None)  # closed, default plan: untouched
    assert {t[0] for t in tasks} == {"L2", "L3"}
    whatsapp_e1 = ("E1", "early@1/20261103T150000Z/whatsapp/0/0")
    assert (moves[whatsapp_e1]["rule_id"], planned[whatsapp_e1]["due_at"]) == (
        "mx.contact-hours",
        utc(11, 4, 13),  # 07:00 in Mexico City, when contact hours open
    )
    whatsapp_e2 = ("E2", "early@1/20261103T180000Z/whatsapp/0/0")
    assert whatsapp_e2 not in moves and planned[whatsapp_e2]["due_at"] == utc(11, 3, 18)
    assert [d["reason"] for d in bulk_decisions if d["verdict"] == "skipped"] == [
        "steps[0] 'before' skipped: its time 2026-10-29T14:00:00+00:00 had passed when the "
        "debtor entered the segment"
    ]
    sms_d2 = [r for r in planned.values() if r["debtor_id"] == "D2"]
    assert [(r["step_id"], r["due_at"]) for r in sms_d2] == [("after", utc(11, 6, 16))]  # 10:00 CST
    assert (report.debtors, report.replanned) == (11, 2)
    assert report.moved == len(moves) >= 4 and report.skipped == 1
    assert timedelta(0) < max(m["moved_to"] - NOW for m in moves.values()) <= timedelta(days=1)


async def test_a_tenant_plans_its_day_on_request_and_no_other_tenants(database_url: str) -> None:
    service, app = await orchestrator_and_api(database_url)
    dsn = dsn_of(database_url)
    try:
        await seed(dsn, portfolio())
        connection = await asyncpg.connect(dsn)
        try:  # another bank's debtor, on its own copy of the strategy
            await connection.execute(
                "INSERT INTO orchestrator.strategy_versions SELECT 'other-bank', strategy_id,"
                " version, document, status, created_at, activated_at"
                " FROM orchestrator.strategy_versions WHERE strategy_id = 'early'"
            )
            await connection.execute(
                "INSERT INTO orchestrator.cases SELECT (jsonb_populate_record("
                'NULL::orchestrator.cases, to_jsonb(c) || \'{"tenant_id": "other-bank"}\')).*'
                " FROM orchestrator.cases c WHERE debtor_id = 'E1'"
            )
        finally:
            await connection.close()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://orchestrator",
            headers={"Authorization": "Bearer k"},
        ) as client:
            response = await client.post("/v1/plans:run")
    finally:
        await service.engine.dispose()

    assert response.status_code == 200, response.text
    run = response.json()
    assert (run["debtors"], run["skipped"], run["replanned"]) == (11, 1, 2)
    assert run["actions"] >= 9 and run["moved"] >= 4
    assert run["planned_at"] == "2026-11-04T04:00:00Z"
    planned = await fetch(
        dsn, "SELECT debtor_id FROM orchestrator.scheduled_actions WHERE tenant_id <> $1"
    )
    assert planned == []  # the other bank's debtor waits for its own run

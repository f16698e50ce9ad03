"""Planning the day is recorded per tenant and day, on a real PostgreSQL: a restarted orchestrator
does not plan a finished day again, a run that stopped half-way resumes after its last committed
chunk (the debtors planned before the stop are not planned twice), and a supervisor sees each
run's progress through the API."""

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.day_plan import plan_day
from recupero_runtime.service import Service
from tests.integration.test_orchestrator_day_plan import (
    NOW,
    TENANT,
    dsn_of,
    orchestrator_and_api,
    portfolio,
    seed,
    utc,
)

pytestmark = pytest.mark.integration

# Open cases on a strategy in the portfolio, in key order: D1 D2 E1 ... E6 L1 L2 L3.
OPEN_ON_A_STRATEGY = 11


@pytest.fixture
async def orchestrator(
    database_url: str,
) -> AsyncIterator[tuple[Service[OrchestratorRepository], FastAPI]]:
    service, app = await orchestrator_and_api(database_url)
    await seed(dsn_of(database_url), portfolio())
    try:
        yield service, app
    finally:
        await service.engine.dispose()


async def runs_seen_by_a_supervisor(app: FastAPI) -> list[dict[str, object]]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://orchestrator",
        headers={"Authorization": "Bearer k"},
    ) as client:
        response = await client.get("/v1/plans/runs")
        assert response.status_code == 200, response.text
        runs: list[dict[str, object]] = response.json()
        for run in runs:
            one = await client.get(f"/v1/plans/runs/{run['run_id']}")
            assert one.json() == run
        return runs


async def execute(database_url: str, sql: str, *args: object) -> None:
    connection = await asyncpg.connect(dsn_of(database_url))
    try:
        await connection.execute(sql, *args)
    finally:
        await connection.close()


async def actions_of(database_url: str, debtor_id: str) -> list[str]:
    connection = await asyncpg.connect(dsn_of(database_url))
    try:
        rows = await connection.fetch(
            "SELECT action_key FROM orchestrator.scheduled_actions"
            " WHERE tenant_id = $1 AND debtor_id = $2 ORDER BY action_key",
            TENANT,
            debtor_id,
        )
        return [row["action_key"] for row in rows]
    finally:
        await connection.close()


async def test_a_restarted_orchestrator_does_not_plan_a_finished_day_again(
    orchestrator: tuple[Service[OrchestratorRepository], FastAPI], database_url: str
) -> None:
    service, app = orchestrator
    first = await plan_day(service, NOW, chunk_size=3, parts=2)
    # A debtor who enters a segment after the day was planned waits for the next day's run
    # (or a run on request), not for the orchestrator's next restart.
    await execute(
        database_url,
        "INSERT INTO orchestrator.cases SELECT (jsonb_populate_record(NULL::orchestrator.cases,"
        ' to_jsonb(c) || \'{"debtor_id": "E9"}\')).* FROM orchestrator.cases c'
        " WHERE debtor_id = 'E1'",
    )
    again = await plan_day(service, NOW + timedelta(hours=3), chunk_size=3, parts=2)
    runs = await runs_seen_by_a_supervisor(app)
    next_day = await plan_day(service, NOW + timedelta(days=1), chunk_size=3, parts=2)

    assert (first.debtors, len(first.runs)) == (OPEN_ON_A_STRATEGY, 1)
    assert (again.runs, again.debtors, again.actions) == ([], 0, 0)
    assert [(run["trigger"], run["plan_date"], run["debtors"]) for run in runs] == [
        ("daily", "2026-11-04", OPEN_ON_A_STRATEGY)
    ]
    assert runs[0]["finished_at"] is not None and runs[0]["parts"] == runs[0]["parts_finished"]
    assert runs[0]["actions"] == first.actions > 0
    assert next_day.debtors == OPEN_ON_A_STRATEGY + 1
    assert await actions_of(database_url, "E9") != []


async def test_an_interrupted_run_resumes_after_its_last_committed_chunk(
    orchestrator: tuple[Service[OrchestratorRepository], FastAPI], database_url: str
) -> None:
    service, app = orchestrator
    # M1 (after L3) carries a time zone the planner cannot read: the process stops in the third
    # chunk of four debtors, as if it had been killed there.
    await execute(
        database_url,
        "INSERT INTO orchestrator.cases SELECT (jsonb_populate_record(NULL::orchestrator.cases,"
        ' to_jsonb(c) || \'{"debtor_id": "M1"}\')).* FROM orchestrator.cases c'
        " WHERE debtor_id = 'E1'",
    )
    await execute(
        database_url,
        'UPDATE orchestrator.cases SET contact = contact || \'{"time_zone": "Mars/Olympus"}\''
        " WHERE debtor_id = 'M1'",
    )
    with pytest.raises(Exception, match="Mars/Olympus"):
        await plan_day(service, NOW, chunk_size=4)
    (stopped,) = await runs_seen_by_a_supervisor(app)
    planned_before_the_stop = await actions_of(database_url, "E1")

    # Before the restart E1 (planned in the first chunk) moves to a new segment, so planning
    # it again would propose a new run of its strategy; the restart must not.
    await execute(
        database_url,
        "UPDATE orchestrator.cases SET segment_entered_at = $1 WHERE debtor_id = 'E1'",
        utc(11, 3, 20),
    )
    await execute(
        database_url,
        'UPDATE orchestrator.cases SET contact = contact || \'{"time_zone": "America/Lima"}\''
        " WHERE debtor_id = 'M1'",
    )
    resumed = await plan_day(service, NOW + timedelta(minutes=5), chunk_size=4)
    (finished,) = await runs_seen_by_a_supervisor(app)

    assert stopped["finished_at"] is None
    assert (stopped["debtors"], stopped["parts_finished"]) == (8, 0)  # two chunks committed
    assert [str(run) for run in resumed.runs] == [stopped["run_id"]]
    assert finished["run_id"] == stopped["run_id"] and finished["finished_at"] is not None
    assert finished["debtors"] == OPEN_ON_A_STRATEGY + 1  # each debtor once
    assert planned_before_the_stop != [] and await actions_of(database_url, "E1") == (
        planned_before_the_stop
    )
    assert await actions_of(database_url, "M1") != []
    assert await actions_of(database_url, "L3") != []

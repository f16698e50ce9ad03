"""Strategies, variants, contact policy and the durable schedule through the orchestrator's API and
scheduler, on a real PostgreSQL (and Kafka for what the relay publishes)."""

import asyncio

import pytest

from recupero_orchestrator import handlers
from recupero_orchestrator.domain.strategies import SegmentStrategies, assign_variant
from recupero_orchestrator.entrypoints.scheduler import run_once
from tests.integration.test_orchestrator_scenario import (
    DEBTOR,
    EARLY,
    Orchestrator,
    _pending,
    _timing,
    orchestrator,
    segmented,
    utc,
)

pytestmark = pytest.mark.integration
__all__ = ["orchestrator"]  # the fixture, shared with the scenario test


async def test_invalid_strategies_and_looser_policies_are_refused_with_paths(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    broken = {**EARLY, "steps": [{**EARLY["steps"][0], "channel": "whatsap"}]}  # type: ignore[index]
    response = await o.client.put("/v1/strategies/early/versions/1", json=broken)
    assert response.status_code == 422
    errors = response.json()["detail"]["errors"]
    assert errors[0].startswith("steps[0].channel: unknown channel 'whatsap' (expected one of:")

    mismatch = await o.client.put("/v1/strategies/other/versions/1", json=EARLY)
    assert mismatch.json()["detail"]["errors"] == [
        "strategy_id: 'early' does not match the URL's 'other'"
    ]

    await o.activate(EARLY)
    changed = {**EARLY, "name": "Renamed"}
    in_use = await o.client.put("/v1/strategies/early/versions/1", json=changed)
    assert in_use.status_code == 409

    looser = await o.client.put(
        "/v1/contact-policy/CO", json={"hours": {"sun": {"start": "09:00", "end": "12:00"}}}
    )
    assert looser.status_code == 422
    assert looser.json()["detail"]["errors"][0].startswith("hours.sun:")

    unknown = await o.client.put(
        "/v1/segments/1-30/variants",
        json={
            "variants": [
                {"strategy_id": "early", "percent": 60},
                {"strategy_id": "nope", "percent": 40},
            ]
        },
    )
    assert unknown.json()["detail"]["errors"] == ["variants.1.strategy_id: no strategy 'nope'"]
    bad_split = await o.client.put(
        "/v1/segments/1-30/variants", json={"variants": [{"strategy_id": "early", "percent": 90}]}
    )
    assert bad_split.status_code == 422
    assert "percentages add up to 90, not 100" in bad_split.json()["detail"]["errors"][0]


async def test_variants_split_debtors_who_keep_theirs_and_results_carry_intervals(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    challenger = {**EARLY, "strategy_id": "challenger", "segments": []}
    await o.activate(EARLY)
    await o.activate(challenger)
    split = [{"strategy_id": "early", "percent": 50}, {"strategy_id": "challenger", "percent": 50}]
    response = await o.client.put("/v1/segments/1-30/variants", json={"variants": split})
    assert response.status_code == 200, response.text

    handle = handlers.debtor_segmented_handler(o.clock, _timing())
    debtors = [f"D-{n}" for n in range(12)]
    for debtor in debtors:
        event = segmented(o.tenant_id, "1-30", "early", 12, o.clock.now)
        await o.handle(handle, event.model_copy(update={"debtor_id": debtor}))
    rows = await o.query(
        "SELECT debtor_id, strategy_id FROM orchestrator.variant_assignments WHERE tenant_id = :t"
    )
    assigned = {row["debtor_id"]: row["strategy_id"] for row in rows}
    shares = SegmentStrategies.model_validate({"segment": "1-30", "variants": split}).variants
    assert assigned == {d: assign_variant(o.tenant_id, d, "1-30", shares) for d in debtors}

    # The split changes; debtors already assigned keep their variant.
    everyone_early = [{"strategy_id": "early", "percent": 100}]
    await o.client.put("/v1/segments/1-30/variants", json={"variants": everyone_early})
    for debtor in debtors:
        event = segmented(o.tenant_id, "1-30", "early", 13, o.clock.now)
        await o.handle(handle, event.model_copy(update={"debtor_id": debtor}))
    rows = await o.query(
        "SELECT c.debtor_id, c.strategy_id FROM orchestrator.cases c WHERE tenant_id = :t"
    )
    assert {row["debtor_id"]: row["strategy_id"] for row in rows} == assigned

    await o.at(utc(11, 2, 16))
    results = (await o.client.get("/v1/segments/1-30/variants/results")).json()
    assert {r["strategy_id"] for r in results} == set(assigned.values())
    for result in results:
        assert result["debtors"] == sum(s == result["strategy_id"] for s in assigned.values())
        rate = result["contact_rate"]
        assert (rate["successes"], rate["trials"]) == (result["debtors"], result["debtors"])
        assert 0 < rate["low"] < rate["rate"] == 1.0 == rate["high"]


async def test_an_opted_out_channel_is_dropped_with_its_rule_and_the_fallback_goes_out(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    await o.activate(EARLY)
    opt_out = await o.client.post(f"/v1/debtors/{DEBTOR}/opt-outs", json={"channel": "whatsapp"})
    assert opt_out.status_code == 204
    handle = handlers.debtor_segmented_handler(o.clock, _timing())
    await o.handle(handle, segmented(o.tenant_id, "1-30", "early", 12, o.clock.now))
    await o.at(utc(11, 2, 16))
    # Dropped at once, so its fallback is due at once too.
    assert await _pending(o) == [("hello", 1, "sms", utc(11, 2, 16))]
    await o.at(utc(11, 2, 16))
    decisions = (await o.client.get(f"/v1/debtors/{DEBTOR}/contact-decisions")).json()
    assert [(d["channel"], d["verdict"], d["rule_id"]) for d in decisions] == [
        ("whatsapp", "dropped", "opt-out.whatsapp"),
        ("sms", "allowed", "allowed"),
    ]
    assert decisions[0]["reason"] == "the debtor opted out of whatsapp"


async def test_replicas_claim_each_due_action_once(orchestrator: Orchestrator) -> None:
    o = orchestrator
    await o.activate(EARLY)
    handle = handlers.debtor_segmented_handler(o.clock, _timing())
    for n in range(20):
        event = segmented(o.tenant_id, "1-30", "early", 12, o.clock.now)
        await o.handle(handle, event.model_copy(update={"debtor_id": f"R-{n}"}))
    # Three schedulers at once, as three replicas would run: SKIP LOCKED shares the work.
    await asyncio.gather(*(run_once(o.service, utc(11, 2, 16), 7) for _ in range(3)))
    await asyncio.gather(*(run_once(o.service, utc(11, 2, 16), 7) for _ in range(3)))
    due = await o.published("action-due")
    assert sorted(event.debtor_id for event in due) == sorted(f"R-{n}" for n in range(20))
    assert len({event.action_id for event in due}) == 20

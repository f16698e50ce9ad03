"""The orchestrator's figures and agents' routing on a real PostgreSQL (and Kafka for what goes out):
the default plan under the contact policy, cost per variant, the promise-kept rate, and work queues
by zone ranked by balance and propensity score."""

from datetime import date
from uuid import uuid4

import pytest

from recupero_events import ActionDue, Money, PaymentReceived, PromiseRegistered
from recupero_orchestrator import handlers
from tests.integration.test_orchestrator_scenario import (
    DEBTOR,
    EARLY,
    Orchestrator,
    _timing,
    orchestrator,
    segmented,
    utc,
)

pytestmark = pytest.mark.integration
__all__ = ["orchestrator"]  # the fixture, shared with the scenario test


def _paid(tenant_id: str, debtor_id: str, amount_minor: int, at_hour: int) -> PaymentReceived:
    return PaymentReceived(
        tenant_id=tenant_id,
        debtor_id=debtor_id,
        payment_id=uuid4(),
        amount=Money(amount_minor=amount_minor, currency="MXN"),
        method="bank_transfer",
        received_at=utc(11, 4, at_hour),
    )


async def test_a_default_plan_email_due_at_3am_goes_out_when_contact_hours_open(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    # Tue 3 Nov 2026, 09:00 UTC: 03:00 in Mexico City. No tenant strategy: the default plan.
    o.clock.now = utc(11, 3, 9)
    event = segmented(o.tenant_id, "1-30", "none", 12, o.clock.now)
    await o.handle(handlers.debtor_segmented_handler(o.clock, _timing()), event)
    await o.at(utc(11, 3, 9))
    await o.at(utc(11, 3, 12, 59))
    assert await o.published("action-due") == []

    decisions = (await o.client.get(f"/v1/debtors/{DEBTOR}/contact-decisions")).json()
    assert [(d["verdict"], d["rule_id"], d["moved_to"]) for d in decisions] == [
        ("moved", "mx.contact-hours", "2026-11-03T13:00:00Z")
    ]
    assert "03:00 is before contact hours 07:00–22:00" in decisions[0]["reason"]

    await o.at(utc(11, 3, 13))  # 07:00 local
    sent = await o.published("action-due")
    assert [(e.template, e.channel.value) for e in sent] == [("first-reminder", "email")]
    assert isinstance(sent[0], ActionDue) and sent[0].scheduled_for == utc(11, 3, 13)
    summary = (await o.client.get("/v1/contact-decisions/summary")).json()
    assert summary["debtors"] == 1
    assert {(r["verdict"], r["rule_id"], r["decisions"]) for r in summary["rules"]} == {
        ("moved", "mx.contact-hours", 1),
        ("allowed", "allowed", 1),
    }


async def test_variant_results_carry_contact_cost_and_cost_per_peso_collected(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    assert (await o.client.get("/v1/channel-costs")).json()["is_default"] is True
    missing = await o.client.put(
        "/v1/channel-costs", json={"currency": "MXN", "per_contact": {"whatsapp": 90}}
    )
    assert missing.status_code == 422
    assert "no price for sms, email" in missing.json()["detail"]["errors"][0]
    prices = {
        "whatsapp": 90,
        "sms": 60,
        "email": 2,
        "ivr": 250,
        "letter": 2_500,
        "agent_call": 4_000,
        "field_visit": 30_000,
        "legal_referral": 100_000,
    }
    saved = await o.client.put("/v1/channel-costs", json={"currency": "MXN", "per_contact": prices})
    assert saved.status_code == 200 and saved.json()["is_default"] is False

    challenger = {**EARLY, "strategy_id": "challenger", "segments": []}
    await o.activate(EARLY)
    await o.activate(challenger)
    split = [{"strategy_id": "early", "percent": 50}, {"strategy_id": "challenger", "percent": 50}]
    assert (await o.client.put("/v1/segments/1-30/variants", json={"variants": split})).is_success
    handle = handlers.debtor_segmented_handler(o.clock, _timing())
    debtors = [f"D-{n}" for n in range(8)]
    for debtor in debtors:
        event = segmented(o.tenant_id, "1-30", "early", 12, o.clock.now)
        await o.handle(handle, event.model_copy(update={"debtor_id": debtor}))
    await o.at(utc(11, 2, 16))  # every debtor's WhatsApp goes out
    # One debtor pays 50,000.00 MXN.
    payer = debtors[0]
    await o.handle(
        handlers.payment_received_handler(o.clock), _paid(o.tenant_id, payer, 5_000_000, 1)
    )

    rows = await o.query(
        "SELECT debtor_id, strategy_id FROM orchestrator.variant_assignments WHERE tenant_id = :t"
    )
    variant_of = {row["debtor_id"]: row["strategy_id"] for row in rows}
    results = {
        r["strategy_id"]: r
        for r in (await o.client.get("/v1/segments/1-30/variants/results")).json()
    }
    for strategy_id, result in results.items():
        members = sum(v == strategy_id for v in variant_of.values())
        assert result["contacts_by_channel"] == {"whatsapp": members}
        assert result["cost"] == {"amount_minor": 90 * members, "currency": "MXN"}
        if strategy_id == variant_of[payer]:
            assert result["cost_per_collected"] == pytest.approx(90 * members / 5_000_000)
        else:
            assert result["cost_per_collected"] is None
        assert 0 < result["contact_rate"]["low"] < 1  # the intervals are still there


async def test_promise_kept_rate_per_source_and_month_with_an_interval(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    handle = handlers.debtor_segmented_handler(o.clock, _timing())
    register = handlers.promise_registered_handler(o.clock)
    # Five debtors promise 1,000.00 MXN by Fri 6 Nov: two on the portal, two through the chatbot,
    # one to an agent. One of them promises again in December.
    made = [
        ("P-1", "portal", utc(11, 2, 16)),
        ("P-2", "portal", utc(11, 2, 17)),
        ("P-3", "chatbot", utc(11, 2, 18)),
        ("P-4", "chatbot", utc(11, 2, 19)),
        ("P-5", "agent", utc(11, 2, 20)),
    ]
    for debtor, source, at in made:
        o.clock.now = at
        event = segmented(o.tenant_id, "1-30", "none", 12, at)
        await o.handle(handle, event.model_copy(update={"debtor_id": debtor}))
        promise = PromiseRegistered(
            tenant_id=o.tenant_id,
            debtor_id=debtor,
            promise_id=uuid4(),
            amount=Money(amount_minor=100_000, currency="MXN"),
            promised_on=date(2026, 11, 6),
            source=source,
            registered_at=at,
        )
        await o.handle(register, promise)
    paid = handlers.payment_received_handler(o.clock)
    await o.handle(paid, _paid(o.tenant_id, "P-1", 100_000, 15))  # kept
    await o.handle(paid, _paid(o.tenant_id, "P-3", 40_000, 15))  # partially kept
    # P-2, P-4 and P-5 pay nothing: broken once the deadline (6 Nov + grace) has passed.
    await o.at(utc(11, 20, 12))
    o.clock.now = utc(12, 1, 16)
    december = PromiseRegistered(
        tenant_id=o.tenant_id,
        debtor_id="P-4",
        promise_id=uuid4(),
        amount=Money(amount_minor=100_000, currency="MXN"),
        promised_on=date(2026, 12, 10),
        source="chatbot",
        registered_at=o.clock.now,
    )
    await o.handle(register, december)  # open until its own deadline

    response = await o.client.get("/v1/promises/kept-rate", params={"period": "month"})
    assert response.status_code == 200, response.text
    figures = {(f["period_start"][:7], f["source"]): f for f in response.json()}
    november = figures[("2026-11", "all")]
    counted = ("made", "kept", "partially_kept", "broken", "open", "replaced")
    assert tuple(november[k] for k in counted) == (5, 1, 1, 3, 0, 0)
    rate = november["kept_rate"]
    assert (rate["successes"], rate["trials"], rate["rate"]) == (1, 5, 0.2)
    assert 0 < rate["low"] < 0.2 < rate["high"] < 1 and rate["confidence"] == 0.95
    portal = figures[("2026-11", "portal")]
    assert (portal["kept"], portal["broken"], portal["kept_rate"]["rate"]) == (1, 1, 0.5)
    assert figures[("2026-11", "agent")]["broken"] == 1
    assert figures[("2026-11", "chatbot")]["partially_kept"] == 1
    december_row = figures[("2026-12", "chatbot")]
    assert (december_row["made"], december_row["open"], december_row["kept_rate"]["trials"]) == (
        1,
        1,
        0,
    )

    only_portal = await o.client.get(
        "/v1/promises/kept-rate",
        params={"source": "portal", "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
    )
    assert [(f["source"], f["made"]) for f in only_portal.json()] == [
        ("portal", 2),
        ("all", 2),
    ]
    naive = await o.client.get("/v1/promises/kept-rate", params={"from": "2026-11-01T00:00:00"})
    assert naive.status_code == 422


CALL_FIRST = {
    "strategy_id": "call-first",
    "version": 1,
    "name": "Call first",
    "segments": ["1-30"],
    "steps": [
        {
            "step_id": "call",
            "timing": {"anchor": "segment_entry", "days": 0, "local_time": "10:00"},
            "channel": "agent_call",
            "template": "call-script",
        }
    ],
}


async def test_agents_pull_tasks_of_their_zone_ranked_by_balance_and_score(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    await o.activate(CALL_FIRST)
    handle = handlers.debtor_segmented_handler(o.clock, _timing())
    # (debtor, zone, balance in minor units, propensity score)
    debtors = [
        ("Z-1", "Lima Norte", 1_000_000, 20),  # priority 200,000
        ("Z-2", "Lima Norte", 400_000, 90),  # priority 360,000
        ("Z-3", "Lima Sur", 2_000_000, 50),  # priority 1,000,000
        ("Z-4", None, 300_000, None),  # zone and score unknown: 50 -> 150,000
    ]
    for debtor, zone, balance, score in debtors:
        event = segmented(o.tenant_id, "1-30", "call-first", 12, o.clock.now)
        money = Money(amount_minor=balance, currency="MXN")
        await o.handle(
            handle,
            event.model_copy(
                update={
                    "debtor_id": debtor,
                    "zone": zone,
                    "propensity_score": score,
                    "balance": money,
                    "snapshot_balance": money,
                }
            ),
        )
    # Re-placed by an event that does not say the zone or score: both are kept.
    again = segmented(o.tenant_id, "1-30", "call-first", 13, o.clock.now)
    await o.handle(
        handle,
        again.model_copy(
            update={
                "debtor_id": "Z-1",
                "balance": Money(amount_minor=1_000_000, currency="MXN"),
                "snapshot_balance": Money(amount_minor=1_000_000, currency="MXN"),
            }
        ),
    )
    await o.at(utc(11, 2, 16))  # 10:00 in Mexico City: every call step becomes a task

    depths = (await o.client.get("/v1/agent-queues")).json()
    assert [(d["zone"], d["open"], d["assigned"], d["top_priority"]) for d in depths] == [
        ("Lima Norte", 2, 0, 360_000),
        ("Lima Sur", 1, 0, 1_000_000),
        (None, 1, 0, 150_000),
    ]

    north = await o.client.post("/v1/agents/ana/next-task", params={"zone": "Lima Norte"})
    assert (north.json()["debtor_id"], north.json()["priority"]) == ("Z-2", 360_000)
    both = await o.client.post(
        "/v1/agents/luis/next-task", params=[("zone", "Lima Norte"), ("zone", "Lima Sur")]
    )
    assert (both.json()["debtor_id"], both.json()["zone"]) == ("Z-3", "Lima Sur")
    anyone = await o.client.post("/v1/agents/eva/next-task")
    assert anyone.json()["debtor_id"] == "Z-1"  # 200,000 beats the unknown debtor's 150,000
    assert (
        await o.client.post("/v1/agents/rosa/next-task", params={"zone": "Lima Sur"})
    ).status_code == 204

    depths = (await o.client.get("/v1/agent-queues")).json()
    assert [(d["zone"], d["open"], d["assigned"]) for d in depths] == [
        ("Lima Norte", 0, 2),
        ("Lima Sur", 0, 1),
        (None, 1, 0),
    ]

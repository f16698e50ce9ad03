"""Rule set versions through the segmenter's API on real PostgreSQL: upload with path-precise
rejections, activation that re-segments the whole portfolio and writes history and events only for
debtors that moved, the what-if preview, and tenant isolation. One test follows the events to
Kafka."""

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from recupero_events import (
    ContactDetails,
    DebtDocument,
    DebtImported,
    DebtorAttributes,
    DebtorSegmented,
    DocumentKind,
    Money,
    PostalAddress,
)
from recupero_runtime.auth import hash_api_key
from recupero_runtime.db import upgrade_schema
from recupero_runtime.outbox import events_of
from recupero_runtime.service import Service
from recupero_segmenter import handlers
from recupero_segmenter.adapters.repository import SegmenterRepository
from recupero_segmenter.bootstrap import bootstrap
from recupero_segmenter.domain.defaults import AGING_BY_AMOUNT_DOCUMENT, DEFAULT_DOCUMENT
from recupero_segmenter.domain.propensity import aging_penalty
from recupero_segmenter.settings import SegmenterSettings
from tests.unit.fakes import delivered

pytestmark = pytest.mark.integration
ADDRESS = PostalAddress(
    street_lines=["Calle Morelos 45, Col. Centro"],
    city="Guadalajara",
    region="Jalisco",
    postal_code="44100",
    country="MX",
)

NOW = datetime(2026, 11, 22, 15, tzinfo=UTC)


@dataclass
class Segmenter:
    service: Service[SegmenterRepository]
    client: httpx.AsyncClient
    rules: handlers.RuleBook
    tenant: str
    other_tenant: str

    async def import_debtor(
        self,
        debtor_id: str,
        days_past_due: int,
        balance_minor: int,
        *,
        tenant: str | None = None,
        product: str = "loan",
        currency: str = "MXN",
    ) -> None:
        due = NOW.date() - timedelta(days=days_past_due)
        event = DebtImported(
            tenant_id=tenant or self.tenant,
            debtor_id=debtor_id,
            import_id=uuid4(),
            as_of=NOW - timedelta(hours=1),
            contact=ContactDetails(
                name="Ana Pérez",
                phone="+5215512345678",
                country="MX",
                time_zone="America/Mexico_City",
                postal_address=ADDRESS,
            ),
            attributes=DebtorAttributes(zone="Norte", risk_score="610"),
            documents=[
                DebtDocument(
                    document_id=f"{debtor_id}-1",
                    kind=DocumentKind.INSTALLMENT,
                    product=product,
                    due_on=due,
                    amount=Money(amount_minor=balance_minor, currency=currency),
                )
            ],
            balance=Money(amount_minor=balance_minor, currency=currency),
            oldest_due_on=due,
            change="new",
        )
        handle = handlers.debt_imported_handler(lambda: NOW, self.rules)
        async with self.service.unit_of_work() as uow:
            await handle(delivered(event), uow)
            await uow.commit()

    async def events(self, tenant: str | None = None) -> list[DebtorSegmented]:
        async with self.service.unit_of_work() as uow:
            rows = await uow.session.execute(
                text(
                    "SELECT event_id::text, debtor_id, batch_events, value FROM segmenter.outbox"
                    " WHERE tenant_id = :t AND topic = 'debtor-segmented' ORDER BY id"
                ),
                {"t": tenant or self.tenant},
            )
            return [
                DebtorSegmented.model_validate_json(payload)
                for row in rows
                for _, _, payload in events_of(*row)
            ]

    async def upload(self, document: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.put(
            "/v1/rulesets",
            content=yaml.safe_dump(document, allow_unicode=True),
            headers={"content-type": "application/yaml", **(headers or {})},
        )


@pytest.fixture
async def segmenter(database_url: str) -> AsyncIterator[Segmenter]:
    tenant, other = f"bank-{uuid4().hex[:8]}", f"other-{uuid4().hex[:8]}"
    settings = SegmenterSettings(
        database_url=database_url,
        api_keys={hash_api_key("key-a"): tenant, hash_api_key("key-b"): other},
        log_level="WARNING",
        activation_chunk_size=4,  # several chunks even for a small portfolio
    )
    service, app = bootstrap(settings, clock=lambda: NOW)
    await upgrade_schema(service.engine, service._migrations, "segmenter")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://segmenter",
        headers={"Authorization": "Bearer key-a"},
    ) as client:
        yield Segmenter(service, client, app.state.rules, tenant, other)
    await service.engine.dispose()


def with_large_split() -> dict[str, Any]:
    """The default rule set with 31-60 split by balance: only debtors there can move."""
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    segments = document["segments"]
    bucket = segments[4]
    large = {
        "name": "31-60-large",
        "stage": "extrajudicial",
        "strategy": "agency",
        "band": "aging",
        "when": {"all": [bucket["when"], {"field": "balance", "gte": {"MXN": 500_000}}]},
    }
    segments.insert(4, large)
    return document


async def test_a_bad_rule_set_is_rejected_with_paths_and_the_active_one_stays(
    segmenter: Segmenter,
) -> None:
    good = await segmenter.upload(with_large_split())
    assert good.status_code == 201, good.text
    activated = await segmenter.client.post(f"/v1/rulesets/{good.json()['version']}/activate")
    assert activated.status_code == 200, activated.text

    bad = copy.deepcopy(DEFAULT_DOCUMENT)
    bad["segments"][3]["when"] = {"field": "dayz_past_due", "between": [1, 30]}
    bad["segments"][5]["when"] = {"field": "days_past_due", "between": ["61", 90]}
    bad["segments"].append(
        {"name": "ancient", "stage": "judicial", "when": {"field": "days_past_due", "gte": 400}}
    )
    response = await segmenter.upload(bad)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "path": "segments[3].when.field",
            "message": "unknown field 'dayz_past_due' (did you mean days_past_due?); custom "
            "attributes are written custom.<name>",
        },
        {
            "path": "segments[5].when.between",
            "message": "expected [low, high], two whole numbers, for 'days_past_due', got "
            "['61', 90]",
        },
    ]
    # Once the types are right, the shadowed segment and the band gap are reported too.
    bad["segments"][3]["when"] = {"field": "days_past_due", "between": [1, 20]}
    bad["segments"][5]["when"] = {"field": "days_past_due", "between": [61, 90]}
    response = await segmenter.upload(bad)
    assert [problem["message"] for problem in response.json()["detail"]] == [
        "band family 'aging' leaves a gap: no segment covers 'days_past_due' 21..30, between "
        "segments[3] '1-30' and segments[4] '31-60'",
        "segment 'ancient' can never match: every debtor it matches is matched first by "
        "segments[7] '180+'",
    ]
    broken_yaml = await segmenter.client.put("/v1/rulesets", content=b"segments: [\n  - a: b\n")
    assert broken_yaml.status_code == 422
    assert broken_yaml.json()["detail"][0]["message"].startswith("not valid YAML or JSON: line")

    active = (await segmenter.client.get("/v1/rulesets/active")).json()
    assert (active["version"], active["status"]) == ("v1", "active")
    versions = (await segmenter.client.get("/v1/rulesets")).json()
    assert [(v["version"], v["status"]) for v in versions] == [
        ("v1", "active"),
        ("default-1", "builtin"),
    ]


async def test_activation_resegments_everyone_and_reports_only_who_moved(
    segmenter: Segmenter,
) -> None:
    portfolio = {
        "A-early": (10, 100_000),
        "A-mid-small": (45, 100_000),
        "A-mid-large": (45, 900_000),
        "A-mid-large-2": (50, 700_000),
        "A-late": (200, 900_000),
        "A-settled": (70, 0),
        "A-mid-large-pen": (40, 900_000),  # PEN: the MXN threshold does not apply
    }
    for debtor_id, (days, balance) in portfolio.items():
        currency = "PEN" if debtor_id.endswith("pen") else "MXN"
        await segmenter.import_debtor(debtor_id, days, balance, currency=currency)
    await segmenter.import_debtor("B-mid-large", 45, 900_000, tenant=segmenter.other_tenant)
    on_import = await segmenter.events()
    assert {e.contact.postal_address for e in on_import} == {ADDRESS}
    assert len(on_import) == len(portfolio)
    # Each placement tells the orchestrator the debtor's zone and propensity score (for agents'
    # queues): new debtors with no history score 50 less their aging penalty.
    assert {(e.zone, e.propensity_score) for e in on_import} == {
        ("Norte", 50 - aging_penalty(e.days_past_due)) for e in on_import
    }
    assert {e.debtor_id: e.ruleset_version for e in on_import} == dict.fromkeys(
        portfolio, "default-1"
    )

    uploaded = await segmenter.upload(with_large_split())
    assert uploaded.status_code == 201
    draft = uploaded.json()
    assert (draft["version"], draft["status"]) == ("v1", "draft")
    assert len(await segmenter.events()) == len(portfolio)  # a draft changes nothing

    activated = await segmenter.client.post("/v1/rulesets/v1/activate")
    assert activated.status_code == 200, activated.text
    report = activated.json()
    assert (report["evaluated"], report["changed"], report["finished"]) == (7, 2, True)

    moved = (await segmenter.events())[len(portfolio) :]
    assert sorted(e.debtor_id for e in moved) == ["A-mid-large", "A-mid-large-2"]
    for event in moved:
        assert (event.previous_segment, event.segment) == ("31-60", "31-60-large")
        assert (event.previous_stage, event.stage) == ("administrative", "extrajudicial")
        assert (event.strategy, event.ruleset_version) == ("agency", "v1")
        assert event.reason == (
            "rule '31-60-large': 31 <= days_past_due <= 60 and balance >= 500000 MXN"
        )
        assert event.balance == Money(amount_minor=portfolio[event.debtor_id][1], currency="MXN")
        assert event.contact.time_zone == "America/Mexico_City"
        # The contact goes on whole, the postal address included: letters need it downstream.
        assert event.contact.postal_address == ADDRESS
    # The other tenant's debtor in the same bucket is untouched.
    assert len(await segmenter.events(segmenter.other_tenant)) == 1

    history = (await segmenter.client.get("/v1/debtors/A-mid-large/segments")).json()
    assert [(h["segment"], h["ruleset_version"], h["trigger"]) for h in history] == [
        ("31-60-large", "v1", "activation"),
        ("31-60", "default-1", "debt-imported"),
    ]
    assert history[0]["previous_segment"] == "31-60"

    # Activating again is a no-op; the built-in default is still listed.
    again = (await segmenter.client.post("/v1/rulesets/v1/activate")).json()
    assert (again["evaluated"], again["changed"]) == (7, 2)
    assert len(await segmenter.events()) == len(portfolio) + 2


async def test_an_activation_redone_after_a_crash_moves_no_one_twice(
    segmenter: Segmenter,
) -> None:
    for n, (days, balance) in enumerate([(45, 900_000), (45, 100_000), (50, 700_000)] * 4):
        await segmenter.import_debtor(f"R{n:02d}", days, balance)
    await segmenter.upload(with_large_split())
    first = (await segmenter.client.post("/v1/rulesets/v1/activate")).json()
    assert (first["evaluated"], first["changed"]) == (12, 8)
    events = await segmenter.events()
    # As if the process had stopped with its chunks committed but the cursor not yet moved
    # (two chunks at a time commit out of order): the aging worker redoes them all.
    async with segmenter.service.unit_of_work() as uow:
        await uow.session.execute(
            text(
                "UPDATE segmenter.rulesets SET resegment_cursor = NULL, resegment_evaluated = 0, "
                "resegment_finished_at = NULL WHERE tenant_id = :t AND version = 1"
            ),
            {"t": segmenter.tenant},
        )
        await uow.commit()
    redone = await handlers.continue_activation(
        segmenter.service.unit_of_work,
        segmenter.rules,
        segmenter.tenant,
        1,
        lambda: NOW,
        chunk_size=5,
        connections=2,
    )
    assert (redone.evaluated, redone.changed, redone.finished) == (12, 8, True)
    assert await segmenter.events() == events
    history = (await segmenter.client.get("/v1/debtors/R00/segments")).json()
    assert [h["trigger"] for h in history] == ["activation", "debt-imported"]


async def test_a_new_debtor_is_placed_by_the_active_version(segmenter: Segmenter) -> None:
    await segmenter.upload(with_large_split())
    await segmenter.client.post("/v1/rulesets/v1/activate")
    await segmenter.import_debtor("late-comer", 33, 800_000)
    [event] = await segmenter.events()
    assert (event.segment, event.ruleset_version, event.strategy) == ("31-60-large", "v1", "agency")


async def test_preview_shows_segments_balances_and_movements_without_applying(
    segmenter: Segmenter,
) -> None:
    for n, (days, balance) in enumerate(
        [(-3, 50_000), (5, 100_000), (5, 300_000), (45, 100_000), (75, 400_000), (200, 900_000)]
    ):
        await segmenter.import_debtor(f"P{n}", days, balance)
    await segmenter.import_debtor("P-settled", 20, 0)
    before = await segmenter.events()

    response = await segmenter.client.post(
        "/v1/rulesets/preview",
        content=yaml.safe_dump(AGING_BY_AMOUNT_DOCUMENT, allow_unicode=True),
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["debtors"] == 7
    placed = {
        s["segment"]: (s["debtors"], s["balance"]) for s in preview["segments"] if s["debtors"]
    }
    assert placed == {
        "settled": (1, {"MXN": 0}),
        "pre-mora-small": (1, {"MXN": 50_000}),
        "1-30-large": (1, {"MXN": 300_000}),
        "1-30-small": (1, {"MXN": 100_000}),
        "31-60-small": (1, {"MXN": 100_000}),
        "61-90-large": (1, {"MXN": 400_000}),
        "180+-large": (1, {"MXN": 900_000}),
    }
    assert len(preview["segments"]) == 16  # 15 segments and the default
    assert preview["movements"]["1-30"] == {"1-30-small": 1, "1-30-large": 1}
    assert preview["movements"]["settled"] == {"settled": 1}
    assert preview["current"] == {
        "pre-mora": 1,
        "1-30": 2,
        "31-60": 1,
        "61-90": 1,
        "180+": 1,
        "settled": 1,
    }
    # Nothing was applied.
    assert await segmenter.events() == before
    assert (await segmenter.client.get("/v1/rulesets/active")).json()["version"] == "default-1"

    rejected = await segmenter.client.post(
        "/v1/rulesets/preview", content=b'{"segments": [], "default": {}}'
    )
    assert rejected.status_code == 422
    assert rejected.json()["detail"][0]["path"] == "segments"


async def test_tenants_never_see_each_others_rule_sets_or_debtors(segmenter: Segmenter) -> None:
    await segmenter.upload(with_large_split())
    await segmenter.import_debtor("mine", 10, 1000)
    other = {"Authorization": "Bearer key-b"}
    listed = (await segmenter.client.get("/v1/rulesets", headers=other)).json()
    assert [v["version"] for v in listed] == ["default-1"]
    assert (
        await segmenter.client.post("/v1/rulesets/v1/activate", headers=other)
    ).status_code == 404
    assert (await segmenter.client.get("/v1/debtors/mine", headers=other)).status_code == 404
    assert (await segmenter.client.get("/v1/rulesets")).status_code == 200
    unauthenticated = await segmenter.client.get("/v1/rulesets", headers={"Authorization": ""})
    assert unauthenticated.status_code == 401


async def test_the_debtor_view_shows_facts_and_the_propensity_sum(segmenter: Segmenter) -> None:
    await segmenter.import_debtor("V1", 45, 250_000, product="card")
    view = (await segmenter.client.get("/v1/debtors/V1")).json()
    assert (view["segment"], view["stage"], view["strategy"]) == (
        "31-60",
        "administrative",
        "negotiation",
    )
    facts = view["facts"]
    assert (facts["days_past_due"], facts["balance"], facts["product"]) == (45, 250_000, "card")
    assert (facts["zone"], facts["risk_score"], facts["preferred_channel"]) == (
        "Norte",
        610,
        "whatsapp",
    )
    assert view["propensity"]["points"]["aging"] == -10
    assert view["propensity"]["score"] == sum(view["propensity"]["points"].values()) == 40
    assert view["propensity"]["inputs"]["days_past_due"] == 45
    fields = {f["name"] for f in (await segmenter.client.get("/v1/fields")).json()}
    assert {"days_past_due", "balance", "propensity_score", "custom.<name>"} <= fields


async def test_activation_events_reach_kafka(database_url: str, kafka_bootstrap: str) -> None:
    tenant = f"kafka-{uuid4().hex[:8]}"
    settings = SegmenterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys={hash_api_key("k"): tenant},
        log_level="WARNING",
    )
    service, app = bootstrap(settings, clock=lambda: NOW)
    await service.start()
    try:
        harness = Segmenter(service, httpx.AsyncClient(), app.state.rules, tenant, "nobody")
        for n in range(5):
            await harness.import_debtor(f"K{n}", 40 + n, 900_000 if n % 2 else 1000)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://segmenter",
            headers={"Authorization": "Bearer k"},
        ) as client:
            harness.client = client
            await harness.upload(with_large_split())
            report = (await client.post("/v1/rulesets/v1/activate")).json()
        assert report["changed"] == 2
        consumer = AIOKafkaConsumer(
            "debtor-segmented",
            bootstrap_servers=kafka_bootstrap,
            group_id=f"probe-{uuid4()}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        seen: list[DebtorSegmented] = []
        try:
            async with asyncio.timeout(60):
                while sum(e.ruleset_version == "v1" for e in seen) < 2:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        seen += [
                            DebtorSegmented.model_validate_json(r.value)
                            for r in records
                            if r.key and r.key.startswith(tenant.encode())
                        ]
        finally:
            await consumer.stop()
        assert sorted(e.debtor_id for e in seen if e.ruleset_version == "v1") == ["K1", "K3"]
        assert len(seen) == 7  # five placements on import, two moves on activation
    finally:
        await service.stop()

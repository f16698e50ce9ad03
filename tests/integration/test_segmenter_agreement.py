"""The two evaluators of a rule set agree: Python (one debtor, on events) and the compiled SQL
`CASE` (the whole portfolio, on activation, aging and preview), on real PostgreSQL, for random
debtors and random rule sets, including unset values, `not`, money per currency and time zones
whose date differs from UTC's."""

from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recupero_events import CollectionStage
from recupero_runtime.db import upgrade_schema
from recupero_runtime.service import Service
from recupero_segmenter.adapters.repository import SegmenterRepository
from recupero_segmenter.adapters.tables import debtors
from recupero_segmenter.bootstrap import bootstrap
from recupero_segmenter.domain.evaluation import (
    DebtorFacts,
    evaluate,
    field_values,
    local_date,
    propensity_inputs,
)
from recupero_segmenter.domain.propensity import propensity
from recupero_segmenter.domain.rules import (
    FIELDS,
    OPERATORS,
    All,
    AnyOf,
    Compare,
    Condition,
    Kind,
    Not,
    Op,
    RuleSet,
    Segment,
    Target,
)
from recupero_segmenter.handlers import zone_dates
from recupero_segmenter.settings import SegmenterSettings

pytestmark = pytest.mark.integration

ZONES = ["America/Mexico_City", "America/Lima", "Europe/Madrid", "Pacific/Auckland"]
CURRENCIES = ["MXN", "PEN", "COP"]
TEXT_VALUES = {
    "currency": CURRENCIES,
    "country": ["MX", "PE", "CO"],
    "product": ["loan", "card", "service"],
    "zone": ["Norte", "Sur"],
    "customer_type": ["PYME", "persona"],
    "custom.tier": ["gold", "silver"],
    "custom.written_off": ["true", "no"],
}
BASE_DAY = date(2026, 11, 22)


# Few distinct numbers, shared by operands and debtors, so that bounds are hit exactly often.
DAYS = [-2, -1, 0, 1, 2, 7, 30, 31, 60, 61, 181]
AMOUNTS = [-1, 0, 1, 100, 249_999, 250_000]


def numbers(name: str) -> st.SearchStrategy[int]:
    if FIELDS[name].kind is Kind.MONEY:
        return st.sampled_from(AMOUNTS)
    if name == "propensity_score":
        return st.sampled_from([0, 25, 40, 45, 50, 55, 60, 75, 100])
    if name.endswith("_count") or name.startswith("promises"):
        return st.integers(0, 6)
    if name == "risk_score":
        return st.sampled_from([500, 600, 700])
    return st.sampled_from(DAYS)


@st.composite
def leaves(draw: st.DrawFn) -> Compare:
    name = draw(st.sampled_from([*FIELDS, "custom.tier", "custom.written_off"]))
    kind = FIELDS[name].kind if name in FIELDS else Kind.TEXT
    op = draw(st.sampled_from(sorted(OPERATORS[kind])))
    if op is Op.EXISTS:
        return Compare(name, op, draw(st.booleans()))
    if kind in (Kind.TEXT, Kind.ENUM):
        choices = list(FIELDS[name].values) if kind is Kind.ENUM else TEXT_VALUES[name]
        if op in (Op.IN, Op.NOT_IN):
            picked = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3))
            return Compare(name, op, tuple(picked))
        return Compare(name, op, draw(st.sampled_from(choices)))
    number = numbers(name)

    def operand_for(value_op: Op) -> Any:
        if value_op is Op.BETWEEN:
            a, b = sorted((draw(number), draw(number)))
            return (a, b)
        if value_op in (Op.IN, Op.NOT_IN):
            return tuple(draw(st.lists(number, min_size=1, max_size=4)))
        return draw(number)

    if kind is Kind.MONEY and draw(st.booleans()):
        currencies = draw(
            st.lists(st.sampled_from(CURRENCIES), min_size=1, max_size=3, unique=True)
        )
        return Compare(name, op, None, tuple(sorted((c, operand_for(op)) for c in currencies)))
    return Compare(name, op, operand_for(op))


conditions: st.SearchStrategy[Condition] = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: All(tuple(items))),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: AnyOf(tuple(items))),
        inner.map(Not),
    ),
    max_leaves=8,
)


@st.composite
def rulesets(draw: st.DrawFn) -> RuleSet:
    whens = draw(st.lists(conditions, min_size=1, max_size=6))
    segments = tuple(
        Segment(Target(f"s{index}", CollectionStage.ADMINISTRATIVE), when)
        for index, when in enumerate(whens)
    )
    return RuleSet(segments, Target("default", CollectionStage.PREVENTIVE))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


days_ago = st.sampled_from(DAYS).map(lambda n: BASE_DAY - timedelta(days=n))

debtor_facts = st.builds(
    DebtorFacts,
    balance_minor=st.sampled_from(AMOUNTS),
    currency=st.sampled_from(CURRENCIES),
    oldest_due_on=days_ago,
    time_zone=st.sampled_from(ZONES),
    country=maybe(st.sampled_from(TEXT_VALUES["country"])),
    product=maybe(st.sampled_from(TEXT_VALUES["product"])),
    zone=maybe(st.sampled_from(TEXT_VALUES["zone"])),
    customer_type=maybe(st.sampled_from(TEXT_VALUES["customer_type"])),
    risk_score=maybe(st.sampled_from([500, 600, 700])),
    preferred_channel=maybe(st.sampled_from(FIELDS["preferred_channel"].values)),
    documents_count=st.integers(0, 6),
    custom=st.dictionaries(
        st.sampled_from(["tier", "written_off"]), st.sampled_from(["gold", "silver", "true", "no"])
    ),
    actions_count=st.integers(0, 6),
    last_contact_channel=maybe(st.sampled_from(FIELDS["last_contact_channel"].values)),
    last_contact_on=maybe(days_ago),
    promises_made=st.integers(0, 6),
    promises_kept=st.integers(0, 6),
    promises_broken=st.integers(0, 6),
    last_promise_on=maybe(days_ago),
    payments_count=st.integers(0, 6),
    last_payment_on=maybe(days_ago),
)


@pytest.fixture(scope="module")
async def service(database_server_url: str) -> AsyncIterator[Service[SegmenterRepository]]:
    from tests.conftest import create_database

    url = await create_database(database_server_url)
    segmenter, _ = bootstrap(SegmenterSettings(database_url=url, log_level="WARNING"))
    await upgrade_schema(segmenter.engine, segmenter._migrations, "segmenter")
    yield segmenter
    await segmenter.engine.dispose()


def row_of(tenant_id: str, debtor_id: str, facts: DebtorFacts) -> dict[str, Any]:
    return {
        **asdict(facts),
        "custom": dict(facts.custom),
        "tenant_id": tenant_id,
        "debtor_id": debtor_id,
        "contact": {"name": "X", "country": "MX", "time_zone": facts.time_zone},
        "snapshot_balance_minor": facts.balance_minor,
        "snapshot_as_of": datetime(2026, 11, 1, tzinfo=UTC),
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ruleset=rulesets(),
    portfolio=st.lists(debtor_facts, min_size=1, max_size=25),
    hour=st.integers(0, 23),
)
async def test_sql_and_python_place_every_debtor_alike(
    service: Service[SegmenterRepository],
    ruleset: RuleSet,
    portfolio: list[DebtorFacts],
    hour: int,
) -> None:
    tenant = f"t-{uuid4().hex[:10]}"
    # Near midnight UTC, Auckland and Mexico City are on different dates.
    now = datetime(2026, 11, 22, hour, 30, tzinfo=UTC)
    async with service.unit_of_work() as uow:
        await uow.session.execute(
            debtors.insert(),
            [row_of(tenant, f"D{n:03d}", facts) for n, facts in enumerate(portfolio)],
        )
        zones = zone_dates(await uow.repo.time_zones(tenant), now)
        by_sql = await uow.repo.evaluate_with_sql(tenant, ruleset, zones)
        await uow.commit()
    for n, facts in enumerate(portfolio):
        today = local_date(now, facts.time_zone)
        python_index = evaluate(ruleset, field_values(facts, today)).index
        python_score = propensity(propensity_inputs(facts, today)).score
        assert by_sql[f"D{n:03d}"] == (python_index, python_score), (facts, ruleset)

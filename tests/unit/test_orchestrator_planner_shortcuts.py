"""What planning a million debtors a day takes as shortcuts gives the answers the plain way gives:
schedule keys read as the timestamp they always did, a strategy worked out once per document still
plans by that document, a debtor's records read in any order plan the same, and the new actions'
ids are random version-4 UUIDs like `uuid4`'s."""

import random
from datetime import UTC, datetime, timedelta, timezone
from uuid import RFC_4122

from hypothesis import given, settings
from hypothesis import strategies as st

from recupero_orchestrator.day_plan import random_ids
from recupero_orchestrator.domain import strategies as planner
from recupero_orchestrator.domain.channels import ContactChannel
from recupero_orchestrator.domain.strategies import (
    ActionStatus,
    compiled,
    entry_key_prefix,
    plan,
)
from tests.unit.test_orchestrator_strategies import ENTERED, STRATEGY, happened, state

entries = st.datetimes(
    min_value=datetime(1000, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.builds(
        timezone, st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14))
    ),
)


@settings(max_examples=300, deadline=None)
@given(first=entries, second=entries)
def test_schedule_keys_read_as_the_utc_timestamp_of_the_segment_entry(
    first: datetime, second: datetime
) -> None:
    other = STRATEGY.model_copy(update={"version": 4})
    # Asked for in turns (the last answer is kept): each answer is its own entry's.
    for strategy, entered in (
        (STRATEGY, first),
        (other, first),
        (other, second),
        (STRATEGY, first),
    ):
        expected = f"{strategy.reference}/{entered.astimezone(UTC):%Y%m%dT%H%M%SZ}"
        assert entry_key_prefix(strategy, entered) == expected


def test_each_strategy_document_plans_by_its_own_steps_however_many_are_planned() -> None:
    versions = [
        STRATEGY.model_copy(update={"version": version, "repeat": None})
        for version in range(1, planner._COMPILED_LIMIT + 50)
    ]
    repeated = STRATEGY.model_copy(
        update={"repeat": planner.Repeat(from_step="call", every_days=5, max_rounds=1)}
    )
    for document in [*versions, repeated, STRATEGY]:
        shape = compiled(document)
        assert shape.reference == document.reference
        ids = [step.step_id for step in document.steps]
        assert shape.repeat_from == (
            ids.index(document.repeat.from_step) if document.repeat else None
        )
        assert shape.channels == {step.step_id: step.channel for step in document.steps}
        first = plan(document, state(), ENTERED).actions[-1]
        assert first.key.startswith(f"{document.reference}/")
    assert compiled(STRATEGY) is compiled(STRATEGY)
    assert len(planner._COMPILED) <= planner._COMPILED_LIMIT  # bounded, whatever is planned


statuses = st.sampled_from(
    [
        ActionStatus.SENT,
        ActionStatus.DELIVERED,
        ActionStatus.READ,
        ActionStatus.FAILED,
        ActionStatus.DROPPED,
        ActionStatus.PLANNED,
    ]
)
CHANNELS = [ContactChannel.WHATSAPP, ContactChannel.SMS, ContactChannel.EMAIL]


@settings(max_examples=300, deadline=None)
@given(
    attempts=st.lists(statuses, min_size=1, max_size=3),
    later=st.lists(st.sampled_from(["call", "letter"]), max_size=2, unique=True),
    hours=st.integers(min_value=0, max_value=24 * 30),
    seed=st.integers(),
)
def test_a_debtors_records_plan_the_same_in_whatever_order_they_are_read(
    attempts: list[ActionStatus], later: list[str], hours: int, seed: int
) -> None:
    first_at = ENTERED + timedelta(hours=1)
    records = [
        happened("hello", status, first_at + timedelta(minutes=attempt), attempt, CHANNELS[attempt])
        for attempt, status in enumerate(attempts)
    ]
    records += [
        happened(step_id, ActionStatus.READ, first_at + timedelta(days=3 + n), 0)
        for n, step_id in enumerate(later)
    ]
    now = ENTERED + timedelta(hours=hours)
    expected = plan(STRATEGY, state(records=tuple(records)), now)
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    assert plan(STRATEGY, state(records=tuple(shuffled)), now) == expected


def test_new_action_ids_are_distinct_random_version_4_uuids() -> None:
    ids = random_ids(batch=64)
    drawn = [next(ids) for _ in range(1_000)] + [next(random_ids()) for _ in range(200)]
    assert len(set(drawn)) == len(drawn)
    assert {(action_id.version, action_id.variant) for action_id in drawn} == {(4, RFC_4122)}
    # Every bit but the version and variant ones varies, as in `uuid4`.
    varying = 0
    for action_id in drawn:
        varying |= action_id.int ^ drawn[0].int
    assert bin(varying).count("1") == 128 - 6

"""Strategy documents, the planner that reacts to what happened, and champion/challenger."""

import copy
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from recupero_events import Money
from recupero_orchestrator.domain.channels import ContactChannel
from recupero_orchestrator.domain.promises import Promise, ReceivedPayment
from recupero_orchestrator.domain.strategies import (
    ActionKind,
    ActionRecord,
    ActionStatus,
    DebtorState,
    PlannedAction,
    PlanStatus,
    SegmentStrategies,
    StrategyDocument,
    StrategyInvalid,
    VariantShare,
    assign_variant,
    next_actions,
    parse_strategy,
    plan,
    variant_bucket,
    wilson_interval,
)

ENTERED = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 09:00 in Mexico City
FIRST_STEP_AT = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)  # 10:00 local, day 0

DOCUMENT: dict[str, Any] = {
    "strategy_id": "early-digital",
    "version": 3,
    "name": "Early digital",
    "segments": ["1-30"],
    "steps": [
        {
            "step_id": "hello",
            "timing": {"anchor": "segment_entry", "days": 0, "local_time": "10:00"},
            "channel": "whatsapp",
            "template": "first-reminder",
            "fallback": {"channels": ["sms", "email"], "when": "not_delivered", "within_hours": 24},
        },
        {
            "step_id": "call",
            "timing": {"anchor": "previous_step", "days": 3},
            "channel": "agent_call",
            "template": "call-script",
            "when": [
                {"kind": "balance_above", "amount": {"amount_minor": 100_000, "currency": "MXN"}}
            ],
        },
        {
            "step_id": "letter",
            "timing": {"anchor": "previous_step", "days": 7, "local_time": "09:00"},
            "channel": "letter",
            "template": "formal-letter",
        },
    ],
    "reactions": {"agent_task_when_balance_above": {"amount_minor": 5_000_000, "currency": "MXN"}},
}
STRATEGY = parse_strategy(DOCUMENT)
PREFIX = "early-digital@3/20261102T150000Z"


def state(balance_minor: int = 250_000, **changes: Any) -> DebtorState:
    base: dict[str, Any] = {
        "tenant_id": "acme-bank",
        "debtor_id": "C-1",
        "segment": "1-30",
        "entered_segment_at": ENTERED,
        "time_zone": "America/Mexico_City",
        "oldest_due_on": date(2026, 10, 21),
        "days_past_due": 12,
        "balance": Money(amount_minor=balance_minor, currency="MXN"),
    }
    return DebtorState(**(base | changes))


def happened(
    step_id: str,
    status: ActionStatus,
    at: datetime,
    attempt: int = 0,
    channel: ContactChannel = ContactChannel.WHATSAPP,
    round_number: int = 0,
) -> ActionRecord:
    return ActionRecord(
        key=f"{PREFIX}/{step_id}/{round_number}/{attempt}",
        kind=ActionKind.CONTACT,
        status=status,
        planned_for=at,
        step_id=step_id,
        round=round_number,
        attempt=attempt,
        channel=channel,
        happened_at=None if status is ActionStatus.PLANNED else at,
    )


def only(actions: list[PlannedAction]) -> PlannedAction:
    assert len(actions) == 1, actions
    return actions[0]


def invalid(document: dict[str, Any]) -> list[str]:
    with pytest.raises(StrategyInvalid) as raised:
        parse_strategy(document)
    return list(raised.value.errors)


# --- Validation -------------------------------------------------------------------------------


def test_a_misspelt_channel_is_reported_with_its_path() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["steps"][2]["channel"] = "whatsap"
    [error] = invalid(document)
    assert error.startswith(
        "steps[2].channel: unknown channel 'whatsap' (expected one of: whatsapp"
    )


def test_structural_mistakes_are_reported_with_their_paths() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["steps"][0]["timing"]["anchor"] = "previous_step"
    document["steps"][1]["step_id"] = "hello"
    document["steps"][1]["fallback"] = {"channels": ["agent_call"]}
    document["repeat"] = {"from_step": "nope", "every_days": 7}
    assert invalid(document) == [
        "steps[1].step_id: duplicate step id 'hello'",
        "steps[1].fallback.channels[0]: channel 'agent_call' is already tried before in this step",
        "steps[0].timing.anchor: the first step has no previous step",
        "repeat.from_step: unknown step 'nope'",
    ]


def test_field_level_mistakes_name_the_field() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["steps"][0]["templte"] = "typo"
    document["steps"][1]["timing"] = {"anchor": "segment_entry", "days": -2}
    document["steps"][2]["when"] = [{"kind": "moon_is_full"}]
    errors = invalid(document)
    assert errors[0] == "steps[0].templte: Extra inputs are not permitted"
    assert errors[1] == "steps[1].timing: days cannot be negative when counted from segment_entry"
    assert errors[2].startswith("steps[2].when[0]: Input tag 'moon_is_full' found using 'kind'")


def test_a_strategy_reads_from_yaml() -> None:
    parsed = parse_strategy(
        """
        strategy_id: preventive
        version: 1
        name: Preventive
        steps:
          - step_id: before-due
            timing: {anchor: due_date, days: -5}
            channel: whatsapp
            template: upcoming-due
        """
    )
    assert isinstance(parsed, StrategyDocument) and parsed.reference == "preventive@1"


# --- Planning ---------------------------------------------------------------------------------


def test_the_first_step_is_planned_at_the_debtors_local_time() -> None:
    action = only(next_actions(STRATEGY, state(), ENTERED))
    assert (action.key, action.kind, action.channel, action.due_at) == (
        f"{PREFIX}/hello/0/0",
        ActionKind.CONTACT,
        ContactChannel.WHATSAPP,
        FIRST_STEP_AT,
    )
    planned = state(records=(happened("hello", ActionStatus.PLANNED, FIRST_STEP_AT),))
    assert next_actions(STRATEGY, planned, ENTERED) == []  # already scheduled: nothing new


def test_an_undelivered_whatsapp_falls_back_to_sms_after_the_watch_period() -> None:
    sent = state(records=(happened("hello", ActionStatus.SENT, FIRST_STEP_AT),))
    fallback = only(next_actions(STRATEGY, sent, FIRST_STEP_AT + timedelta(hours=25)))
    assert (fallback.key, fallback.channel, fallback.due_at) == (
        f"{PREFIX}/hello/0/1",
        ContactChannel.SMS,
        FIRST_STEP_AT + timedelta(hours=24),
    )
    assert "not delivered on whatsapp within 24 hours" in fallback.reason

    delivered = state(records=(happened("hello", ActionStatus.DELIVERED, FIRST_STEP_AT),))
    call = only(next_actions(STRATEGY, delivered, FIRST_STEP_AT + timedelta(hours=25)))
    assert (call.step_id, call.due_at) == ("call", datetime(2026, 11, 5, 16, 0, tzinfo=UTC))


def test_a_failed_or_refused_message_falls_back_at_once_down_the_channel_list() -> None:
    failed_at = FIRST_STEP_AT + timedelta(minutes=5)
    records = (
        happened("hello", ActionStatus.DROPPED, FIRST_STEP_AT),
        happened("hello", ActionStatus.FAILED, failed_at, 1, ContactChannel.SMS),
    )
    email = only(next_actions(STRATEGY, state(records=records), failed_at))
    assert (email.channel, email.attempt, email.due_at) == (ContactChannel.EMAIL, 2, failed_at)


def test_a_step_whose_condition_fails_when_due_is_skipped_with_the_reason() -> None:
    low_balance = state(50_000, records=(happened("hello", ActionStatus.READ, FIRST_STEP_AT),))
    due = datetime(2026, 11, 5, 16, 0, tzinfo=UTC)
    before = only(next_actions(STRATEGY, low_balance, due - timedelta(days=1)))
    assert before.kind is ActionKind.CONTACT  # conditions are judged when the step comes due
    skipped = only(next_actions(STRATEGY, low_balance, due))
    assert skipped.kind is ActionKind.SKIP
    assert "balance is not above 100000 MXN" in skipped.reason


def test_a_reply_stops_the_strategy_and_hands_the_debtor_to_an_agent() -> None:
    replied = state(
        records=(happened("hello", ActionStatus.READ, FIRST_STEP_AT),),
        replied_at=FIRST_STEP_AT + timedelta(hours=1),
    )
    result = plan(STRATEGY, replied, FIRST_STEP_AT + timedelta(hours=2))
    assert result.status is PlanStatus.STOPPED
    task = only(list(result.actions))
    assert (task.kind, task.key) == (ActionKind.AGENT_TASK, f"{PREFIX}/task/replied")

    recorded = ActionRecord(task.key, ActionKind.AGENT_TASK, ActionStatus.PLANNED, task.due_at)
    again = replace(replied, records=(*replied.records, recorded))
    assert plan(STRATEGY, again, FIRST_STEP_AT + timedelta(hours=3)).actions == ()


def test_a_high_balance_creates_one_agent_task_beside_the_steps() -> None:
    actions = next_actions(STRATEGY, state(6_000_000), ENTERED)
    assert [(a.kind, a.template) for a in actions] == [
        (ActionKind.AGENT_TASK, "high-balance"),
        (ActionKind.CONTACT, "first-reminder"),
    ]


def test_an_open_promise_pauses_then_a_broken_one_goes_to_an_agent() -> None:
    promise = Promise(
        uuid4(), Money(amount_minor=100_000, currency="MXN"), date(2026, 11, 6), ENTERED
    )
    promised = state(promises=(promise,))
    paused = plan(STRATEGY, promised, ENTERED + timedelta(hours=1))
    assert (paused.status, paused.actions) == (PlanStatus.PAUSED, ())
    assert paused.resume_at == datetime(2026, 11, 9, 6, 0, tzinfo=UTC)  # 8 Nov ends in CDMX

    broken = plan(STRATEGY, promised, datetime(2026, 11, 9, 6, 0, tzinfo=UTC))
    assert broken.status is PlanStatus.STOPPED
    assert only(list(broken.actions)).template == "promise-broken"

    kept = state(
        promises=(promise,),
        payments=(ReceivedPayment(promise.amount, ENTERED + timedelta(days=1)),),
    )
    resumed = plan(STRATEGY, kept, ENTERED + timedelta(days=1, hours=1))
    assert resumed.status is PlanStatus.ACTIVE
    assert only(list(resumed.actions)).step_id == "hello"


def test_a_settled_balance_finishes_the_strategy() -> None:
    assert plan(STRATEGY, state(0), ENTERED).status is PlanStatus.FINISHED


def test_a_due_date_step_whose_time_passed_before_the_debtor_arrived_is_skipped() -> None:
    preventive = parse_strategy(
        {
            "strategy_id": "preventive",
            "version": 1,
            "name": "Preventive",
            "steps": [
                {
                    "step_id": "before-due",
                    "timing": {"anchor": "due_date", "days": -5},
                    "channel": "whatsapp",
                    "template": "upcoming-due",
                }
            ],
        }
    )
    skipped = only(next_actions(preventive, state(), ENTERED))
    assert skipped.kind is ActionKind.SKIP and "had passed" in skipped.reason

    early = state(oldest_due_on=date(2026, 11, 20))
    reminder = only(next_actions(preventive, early, ENTERED))
    assert reminder.due_at == datetime(2026, 11, 15, 16, 0, tzinfo=UTC)
    assert reminder.expires_at == datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def test_a_repeat_cadence_runs_more_rounds_then_finishes() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["steps"] = document["steps"][:1]
    del document["steps"][0]["fallback"]
    document["repeat"] = {"from_step": "hello", "every_days": 7, "max_rounds": 1}
    weekly = parse_strategy(document)
    first = happened("hello", ActionStatus.READ, FIRST_STEP_AT)
    second_round = only(next_actions(weekly, state(records=(first,)), FIRST_STEP_AT))
    assert (second_round.round, second_round.due_at) == (1, FIRST_STEP_AT + timedelta(days=7))
    second = happened("hello", ActionStatus.READ, second_round.due_at, round_number=1)
    done = plan(weekly, state(records=(first, second)), second_round.due_at)
    assert done.status is PlanStatus.FINISHED


def test_a_new_segment_entry_starts_a_clean_slate_of_keys() -> None:
    later = ENTERED + timedelta(days=40)
    old = happened("hello", ActionStatus.READ, FIRST_STEP_AT)  # belongs to the previous entry
    action = only(next_actions(STRATEGY, state(entered_segment_at=later), later))
    assert action.key.startswith("early-digital@3/20261212T150000Z/") and action.key != old.key


# --- Champion / challenger --------------------------------------------------------------------

SPLIT = (
    VariantShare(strategy_id="champion", percent=70),
    VariantShare(strategy_id="challenger", percent=30),
)


def test_variants_split_debtors_in_proportion_and_keep_them() -> None:
    ids = [f"C-{number:05d}" for number in range(10_000)]
    assigned = {debtor: assign_variant("acme-bank", debtor, "1-30", SPLIT) for debtor in ids}
    shares = Counter(assigned.values())
    assert abs(shares["champion"] / 10_000 - 0.70) < 0.02
    assert abs(shares["challenger"] / 10_000 - 0.30) < 0.02
    again = {debtor: assign_variant("acme-bank", debtor, "1-30", SPLIT) for debtor in reversed(ids)}
    assert again == assigned


def test_the_variant_hash_is_the_same_in_every_process() -> None:
    # blake2b is unseeded (unlike hash()): pinned values prove the split survives restarts.
    assert [variant_bucket("acme-bank", f"C-{n}", "1-30") for n in range(3)] == PINNED_BUCKETS


PINNED_BUCKETS = [4187, 2810, 7731]


def test_variant_percentages_must_add_up_to_a_hundred() -> None:
    with pytest.raises(ValidationError, match="percentages add up to 90, not 100"):
        SegmentStrategies.model_validate(
            {
                "segment": "1-30",
                "variants": [
                    {"strategy_id": "a", "percent": 60},
                    {"strategy_id": "b", "percent": 30},
                ],
            }
        )


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
        (81, 263, 0.2553, 0.3662),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_matches_known_values(
    successes: int, trials: int, low: float, high: float
) -> None:
    estimate = wilson_interval(successes, trials)
    assert estimate.low == pytest.approx(low, abs=1e-4)
    assert estimate.high == pytest.approx(high, abs=1e-4)
    assert estimate.rate == successes / trials

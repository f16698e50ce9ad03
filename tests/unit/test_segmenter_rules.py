"""The segmentation language: what a tenant can write, what is rejected and where, and how a
debtor is placed by it (the Python evaluator; its SQL twin is proven equal in integration)."""

import copy
from datetime import date
from typing import Any

import pytest

from recupero_events import CollectionStage
from recupero_segmenter.domain.defaults import (
    AGING_BY_AMOUNT_DOCUMENT,
    DEFAULT_DOCUMENT,
    default_ruleset,
)
from recupero_segmenter.domain.evaluation import DebtorFacts, evaluate, field_values
from recupero_segmenter.domain.parsing import InvalidRuleSet, parse_ruleset
from recupero_segmenter.domain.propensity import PropensityInputs, propensity

TODAY = date(2026, 11, 22)


def rejected(document: Any) -> list[str]:
    with pytest.raises(InvalidRuleSet) as caught:
        parse_ruleset(document)
    return [str(error) for error in caught.value.errors]


def default_with(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    for index, segment in changes.items():
        document["segments"][int(index.removeprefix("s"))] = segment
    return document


def facts(**overrides: Any) -> DebtorFacts:
    values: dict[str, Any] = {
        "balance_minor": 150_000,
        "currency": "MXN",
        "oldest_due_on": TODAY,
        "time_zone": "America/Mexico_City",
    }
    return DebtorFacts(**(values | overrides))


def place(document: dict[str, Any], debtor: DebtorFacts) -> str:
    return evaluate(parse_ruleset(document), field_values(debtor, TODAY)).target.name


# -- what is rejected, and where ----------------------------------------------------------------


def test_an_unknown_field_is_named_with_its_path_and_a_suggestion() -> None:
    document = default_with(
        s4={
            "name": "31-60",
            "stage": "administrative",
            "band": "aging",
            "when": {
                "all": [
                    {"field": "days_past_due", "between": [31, 60]},
                    {
                        "any": [
                            {"field": "product", "eq": "card"},
                            {"field": "dayz_past_due", "gte": 3},
                        ]
                    },
                ]
            },
        }
    )
    assert rejected(document) == [
        "segments[4].when.all[1].any[1].field: unknown field 'dayz_past_due' (did you mean "
        "days_past_due?); custom attributes are written custom.<name>"
    ]


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (
            {"field": "days_past_due", "gte": "thirty"},
            "segments[0].when.gte: 'days_past_due' is int: expected a whole number, got text",
        ),
        (
            {"field": "zone", "lt": 3},
            "segments[0].when.lt: operator 'lt' does not apply to text field 'zone'; use one of "
            "eq, exists, in, ne, not_in",
        ),
        (
            {"field": "balance", "gte": {"MXN": 1.5}},
            "segments[0].when.gte.MXN: 'balance' is money: expected a whole number of minor "
            "units, got float",
        ),
        (
            {"field": "balance", "gte": {"mxn": 100}},
            "segments[0].when.gte.mxn: expected an ISO-4217 currency code such as MXN, got 'mxn'",
        ),
        (
            {"field": "preferred_channel", "in": ["whatsap"]},
            "segments[0].when.in[0]: 'whatsap' is not a value of 'preferred_channel' (did you "
            "mean whatsapp?); expected one of email, sms, whatsapp, ivr, letter, agent_call",
        ),
        (
            {"field": "days_past_due", "between": [60, 31]},
            "segments[0].when.between: the low bound 60 is above the high bound 31",
        ),
        (
            {"field": "days_past_due", "betwen": [1, 2]},
            "segments[0].when.betwen: unknown operator 'betwen' (did you mean between?)",
        ),
        (
            {"field": "days_past_due", "gte": 1, "lte": 3},
            "segments[0].when: expected exactly one operator next to 'field', got 2 (gte, lte); "
            "combine several with all/any",
        ),
    ],
)
def test_type_errors_say_where_and_what(leaf: dict[str, Any], message: str) -> None:
    document = {
        "segments": [{"name": "only", "stage": "judicial", "when": leaf}],
        "default": {"name": "rest", "stage": "administrative"},
    }
    assert rejected(document) == [message]


def test_every_problem_is_reported_at_once() -> None:
    document = {
        "segmnts": [],
        "segments": [
            {"name": "a", "stage": "preventiv", "when": {"any": []}},
            {"name": "a b", "stage": "judicial", "colour": "red"},
        ],
    }
    assert rejected(document) == [
        "segmnts: unknown key 'segmnts' (did you mean segments?); expected one of description, "
        "bands, segments, default",
        "segments[0].stage: unknown stage 'preventiv' (did you mean preventive?); expected one "
        "of preventive, administrative, extrajudicial, judicial, settled",
        "segments[0].when.any: an empty 'any' never matches; give at least one condition",
        "segments[1].colour: unknown key 'colour'; expected one of name, stage, strategy, band, "
        "when",
        "segments[1].name: expected a name of 1 to 64 characters without spaces or quotes, got "
        "'a b'",
        "default: missing: declare the segment a debtor goes to when no rule matches",
    ]


def test_a_segment_shadowed_by_an_earlier_one_is_unreachable() -> None:
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document["segments"].append(
        {"name": "ancient", "stage": "judicial", "when": {"field": "days_past_due", "gte": 365}}
    )
    assert rejected(document) == [
        "segments[8]: segment 'ancient' can never match: every debtor it matches is matched "
        "first by segments[7] '180+'"
    ]


def test_a_segment_covered_by_several_earlier_bands_is_unreachable() -> None:
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document["segments"].append(
        {
            "name": "mid",
            "stage": "judicial",
            "when": {"all": [{"field": "days_past_due", "between": [20, 40]}]},
        }
    )
    assert rejected(document) == [
        "segments[8]: segment 'mid' can never match: the 'days_past_due' values it accepts are "
        "all taken first by segments[3] '1-30', segments[4] '31-60'"
    ]


def test_identical_and_unconditional_segments_shadow_what_follows() -> None:
    same = {"field": "product", "in": ["card"]}
    document = {
        "segments": [
            {"name": "cards", "stage": "administrative", "when": {"not": same}},
            {"name": "cards-again", "stage": "judicial", "when": {"not": same}},
            {"name": "everyone", "stage": "administrative"},
            {"name": "late", "stage": "judicial", "when": {"field": "days_past_due", "gt": 9}},
        ],
        "default": {"name": "rest", "stage": "administrative"},
    }
    assert rejected(document) == [
        "segments[1]: segment 'cards-again' can never match: every debtor it matches is matched "
        "first by segments[0] 'cards'",
        "segments[3]: segment 'late' can never match: every debtor it matches is matched first "
        "by segments[2] 'everyone'",
    ]


def test_a_narrower_segment_after_a_wider_one_is_unreachable_but_not_the_reverse() -> None:
    wide = {"field": "product", "in": ["card", "loan"]}
    narrow = {"all": [{"field": "product", "eq": "card"}, {"field": "days_past_due", "gte": 5}]}
    wider_first = {
        "segments": [
            {"name": "wide", "stage": "administrative", "when": wide},
            {"name": "narrow", "stage": "judicial", "when": narrow},
        ],
        "default": {"name": "rest", "stage": "administrative"},
    }
    assert len(rejected(wider_first)) == 1
    narrow_first = copy.deepcopy(wider_first)
    narrow_first["segments"].reverse()
    parse_ruleset(narrow_first)


def test_bands_that_overlap_or_leave_a_gap_are_rejected() -> None:
    gap = default_with(
        s4={
            "name": "31-60",
            "stage": "administrative",
            "band": "aging",
            "when": {"field": "days_past_due", "between": [35, 60]},
        }
    )
    assert rejected(gap) == [
        "segments[4].when: band family 'aging' leaves a gap: no segment covers 'days_past_due' "
        "31..34, between segments[3] '1-30' and segments[4] '31-60'"
    ]
    overlap = default_with(
        s4={
            "name": "31-60",
            "stage": "administrative",
            "band": "aging",
            "when": {"field": "days_past_due", "between": [25, 60]},
        }
    )
    assert rejected(overlap) == [
        "segments[4].when: band family 'aging' overlaps: segments[3] '1-30' and segments[4] "
        "'31-60' both cover 'days_past_due' 25..30"
    ]


def test_money_bands_are_checked_per_currency() -> None:
    def band(name: str, low: dict[str, int], high: dict[str, int]) -> dict[str, Any]:
        return {
            "name": name,
            "stage": "administrative",
            "band": "amount",
            "when": {"all": [{"field": "balance", "gte": low}, {"field": "balance", "lt": high}]},
        }

    document = {
        "bands": {"amount": "balance"},
        "segments": [
            band("small", {"MXN": 1, "PEN": 1}, {"MXN": 50_000, "PEN": 20_000}),
            band("large", {"MXN": 50_000, "PEN": 30_000}, {"MXN": 10**9, "PEN": 10**9}),
        ],
        "default": {"name": "rest", "stage": "administrative"},
    }
    assert rejected(document) == [
        "segments[1].when: band family 'amount' leaves a gap in PEN: no segment covers "
        "'balance' 20000..29999, between segments[0] 'small' and segments[1] 'large'"
    ]


def test_the_built_in_and_example_rule_sets_are_valid() -> None:
    assert [t.name for t in default_ruleset().targets()] == [
        "settled",
        "written-off",
        "pre-mora",
        "1-30",
        "31-60",
        "61-90",
        "91-180",
        "180+",
        "unclassified",
    ]
    assert len(parse_ruleset(AGING_BY_AMOUNT_DOCUMENT).segments) == 15


# -- how a debtor is placed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "segment", "stage"),
    [
        (-3, "pre-mora", CollectionStage.PREVENTIVE),
        (1, "1-30", CollectionStage.ADMINISTRATIVE),
        (60, "31-60", CollectionStage.ADMINISTRATIVE),
        (61, "61-90", CollectionStage.ADMINISTRATIVE),
        (180, "91-180", CollectionStage.EXTRAJUDICIAL),
        (181, "180+", CollectionStage.JUDICIAL),
    ],
)
def test_the_default_rule_set_keeps_the_classic_buckets(
    days: int, segment: str, stage: CollectionStage
) -> None:
    debtor = facts(oldest_due_on=date.fromordinal(TODAY.toordinal() - days))
    decision = evaluate(default_ruleset(), field_values(debtor, TODAY))
    assert (decision.target.name, decision.target.stage) == (segment, stage)


def test_reasons_name_the_rule_and_its_condition() -> None:
    debtor = facts(oldest_due_on=date(2026, 10, 1))
    decision = evaluate(default_ruleset(), field_values(debtor, TODAY))
    assert decision.reason == "rule '31-60': 31 <= days_past_due <= 60"
    written_off = facts(custom={"written_off": "sí"})
    decision = evaluate(default_ruleset(), field_values(written_off, TODAY))
    assert decision.reason == ("rule 'written-off': custom.written_off in [true, yes, si, sí, 1]")
    assert decision.target.stage is CollectionStage.JUDICIAL


def test_first_match_wins_and_the_default_catches_the_rest() -> None:
    document = {
        "segments": [
            {
                "name": "vip-card",
                "stage": "administrative",
                "strategy": "agent",
                "when": {
                    "all": [
                        {"field": "product", "eq": "card"},
                        {"field": "balance", "gte": {"MXN": 100_000, "PEN": 40_000}},
                        {"not": {"field": "zone", "in": ["Norte"]}},
                    ]
                },
            },
            {"name": "card", "stage": "administrative", "when": {"field": "product", "eq": "card"}},
        ],
        "default": {"name": "rest", "stage": "preventive"},
    }
    assert place(document, facts(product="card")) == "vip-card"
    assert place(document, facts(product="card", zone="Norte")) == "card"
    # 150,000 minor units of a currency the rule does not list is not a VIP balance.
    assert place(document, facts(product="card", currency="COP")) == "card"
    assert place(document, facts(product="loan")) == "rest"


def test_an_unset_value_matches_no_comparison_but_exists_sees_it() -> None:
    document = {
        "segments": [
            {"name": "not-north", "stage": "judicial", "when": {"field": "zone", "ne": "Norte"}},
            {"name": "no-zone", "stage": "judicial", "when": {"field": "zone", "exists": False}},
        ],
        "default": {"name": "rest", "stage": "preventive"},
    }
    assert place(document, facts(zone="Sur")) == "not-north"
    assert place(document, facts(zone=None)) == "no-zone"
    assert place(document, facts(zone="Norte")) == "rest"


def test_history_fields_count_from_the_debtors_own_today() -> None:
    document = {
        "segments": [
            {
                "name": "recently-paid",
                "stage": "administrative",
                "when": {"field": "days_since_last_payment", "lte": 7},
            },
            {
                "name": "broke-promises",
                "stage": "extrajudicial",
                "when": {"field": "promises_broken", "gte": 2},
            },
            {
                "name": "custom-vip",
                "stage": "administrative",
                "when": {"field": "custom.tier", "eq": "gold"},
            },
        ],
        "default": {"name": "rest", "stage": "preventive"},
    }
    assert place(document, facts(last_payment_on=date(2026, 11, 16))) == "recently-paid"
    assert place(document, facts(last_payment_on=date(2026, 11, 1))) == "rest"
    assert place(document, facts(promises_broken=2)) == "broke-promises"
    assert place(document, facts(custom={"tier": "gold"})) == "custom-vip"


# -- the propensity score -----------------------------------------------------------------------


def test_propensity_is_a_visible_sum_of_points() -> None:
    scored = propensity(
        PropensityInputs(
            days_past_due=45,
            promises_kept=1,
            promises_broken=1,
            payments_count=2,
            days_since_last_payment=10,
            actions_count=3,
        )
    )
    assert scored.points == {
        "base": 50,
        "promises_kept": 10,
        "promises_broken": -15,
        "payments": 10,
        "recent_payment": 10,
        "aging": -10,
        "unanswered_actions": 0,
    }
    assert scored.score == 55


def test_propensity_is_clamped_and_punishes_silence() -> None:
    hopeless = PropensityInputs(400, 0, 5, 0, None, 9)
    assert propensity(hopeless).points["unanswered_actions"] == -10
    assert propensity(hopeless).score == 0
    model = PropensityInputs(-5, 9, 0, 9, 1, 0)
    assert propensity(model).score == 100


def test_rules_can_use_the_propensity_score() -> None:
    document = {
        "segments": [
            {
                "name": "likely",
                "stage": "preventive",
                "when": {"field": "propensity_score", "gte": 70},
            }
        ],
        "default": {"name": "rest", "stage": "administrative"},
    }
    assert place(document, facts(promises_kept=2, payments_count=1)) == "likely"
    assert place(document, facts()) == "rest"

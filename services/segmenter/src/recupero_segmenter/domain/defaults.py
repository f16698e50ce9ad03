"""The rule set every tenant starts with, and a richer example used by the docs and the benchmark.

Written as the documents a tenant would upload, so they go through the same parser and checks.
"""

from functools import cache
from typing import Any

from recupero_segmenter.domain.parsing import parse_ruleset
from recupero_segmenter.domain.rules import RuleSet

DEFAULT_RULESET_VERSION = "default-1"
SETTLED_SEGMENT = "settled"
WRITTEN_OFF_VALUES = ["true", "yes", "si", "sí", "1"]

# The classic aging buckets (DOMAIN: pre-mora, 1-30, 31-60, 61-90, 91-180, > 180) and the
# collection stage each maps to; written off (castigada) when the import says so.
DEFAULT_DOCUMENT: dict[str, Any] = {
    "description": "Recupero default: aging buckets and the collection stage each maps to.",
    "bands": {"aging": "days_past_due"},
    "segments": [
        {
            "name": SETTLED_SEGMENT,
            "stage": "settled",
            "when": {"field": "balance", "lte": 0},
        },
        {
            "name": "written-off",
            "stage": "judicial",
            "strategy": "judicial",
            "when": {"field": "custom.written_off", "in": WRITTEN_OFF_VALUES},
        },
        {
            "name": "pre-mora",
            "stage": "preventive",
            "strategy": "preventive",
            "band": "aging",
            "when": {"field": "days_past_due", "lte": 0},
        },
        {
            "name": "1-30",
            "stage": "administrative",
            "strategy": "early",
            "band": "aging",
            "when": {"field": "days_past_due", "between": [1, 30]},
        },
        {
            "name": "31-60",
            "stage": "administrative",
            "strategy": "negotiation",
            "band": "aging",
            "when": {"field": "days_past_due", "between": [31, 60]},
        },
        {
            "name": "61-90",
            "stage": "administrative",
            "strategy": "negotiation",
            "band": "aging",
            "when": {"field": "days_past_due", "between": [61, 90]},
        },
        {
            "name": "91-180",
            "stage": "extrajudicial",
            "strategy": "extrajudicial",
            "band": "aging",
            "when": {"field": "days_past_due", "between": [91, 180]},
        },
        {
            "name": "180+",
            "stage": "judicial",
            "strategy": "judicial",
            "band": "aging",
            "when": {"field": "days_past_due", "gte": 181},
        },
    ],
    "default": {"name": "unclassified", "stage": "administrative", "strategy": "review"},
}

# Where the small/large split falls, per currency, in minor units (2,500 in local currency;
# COP and CLP are larger numbers for the same money).
LARGE_BALANCE = {"MXN": 250_000, "PEN": 250_000, "ARS": 2_500_000, "COP": 250_000_000}

_BUCKETS = [
    ("1-30", "administrative", [1, 30]),
    ("31-60", "administrative", [31, 60]),
    ("61-90", "administrative", [61, 90]),
    ("91-180", "extrajudicial", [91, 180]),
]


def _aging_by_amount() -> dict[str, Any]:
    segments: list[dict[str, Any]] = [
        {"name": "settled", "stage": "settled", "when": {"field": "balance", "lte": 0}},
        {
            "name": "written-off",
            "stage": "judicial",
            "strategy": "judicial",
            "when": {"field": "custom.written_off", "in": WRITTEN_OFF_VALUES},
        },
        {
            "name": "promised",
            "stage": "administrative",
            "strategy": "promise-follow-up",
            "when": {
                "all": [
                    {"field": "days_since_last_promise", "lte": 7},
                    {"field": "promises_broken", "eq": 0},
                ]
            },
        },
    ]
    days: list[tuple[str, str, dict[str, Any]]] = [
        ("pre-mora", "preventive", {"field": "days_past_due", "lte": 0}),
        *(
            (name, stage, {"field": "days_past_due", "between": span})
            for name, stage, span in _BUCKETS
        ),
        ("180+", "judicial", {"field": "days_past_due", "gte": 181}),
    ]
    for name, stage, aging in days:
        for size, amount in (
            ("large", {"field": "balance", "gte": LARGE_BALANCE}),
            ("small", {"field": "balance", "lt": LARGE_BALANCE}),
        ):
            segments.append(
                {
                    "name": f"{name}-{size}",
                    "stage": stage,
                    "strategy": f"{stage}-{size}",
                    "band": "aging",
                    "when": {"all": [aging, amount]},
                }
            )
    return {
        "description": "Aging buckets split at 2,500 of balance, plus recent promises.",
        "bands": {"aging": "days_past_due"},
        "segments": segments,
        "default": {"name": "other-currency", "stage": "administrative", "strategy": "review"},
    }


# 15 segments: settled, written off, promised, and six aging buckets x two amount bands.
AGING_BY_AMOUNT_DOCUMENT = _aging_by_amount()


@cache
def default_ruleset() -> RuleSet:
    return parse_ruleset(DEFAULT_DOCUMENT)

"""How agents' tasks are ranked in their work queues.

    priority = max(balance, 0) x propensity / 100        (integer, minor units, rounded down)

that is, the amount a call can be expected to recover: the debtor's outstanding balance weighted by
the segmenter's payment-propensity score (0-100). A debtor whose score is not known yet counts as
`NEUTRAL_PROPENSITY`, the score's own starting point. Higher first; equal priorities in the order the
tasks were created. Balances of different currencies are compared as minor-unit numbers, so a tenant
that collects in several currencies should give each its own queue (stage, skill or zone).
"""

# The segmenter's score starts every debtor at 50 before payments, promises and aging move it.
NEUTRAL_PROPENSITY = 50


def task_priority(balance_minor: int, propensity_score: int | None) -> int:
    score = NEUTRAL_PROPENSITY if propensity_score is None else propensity_score
    return max(balance_minor, 0) * max(0, min(score, 100)) // 100

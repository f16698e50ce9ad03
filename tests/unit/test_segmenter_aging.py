"""Default aging buckets, days past due in the debtor's own time zone."""

from datetime import UTC, date, datetime, timedelta

import pytest

from recupero_events import CollectionStage
from recupero_segmenter.domain.aging import days_past_due, outstanding, place

DUE = date(2026, 1, 1)


@pytest.mark.parametrize(
    ("days", "segment", "stage"),
    [
        (-5, "pre-mora", CollectionStage.PREVENTIVE),
        (0, "pre-mora", CollectionStage.PREVENTIVE),
        (1, "1-30", CollectionStage.ADMINISTRATIVE),
        (30, "1-30", CollectionStage.ADMINISTRATIVE),
        (31, "31-60", CollectionStage.ADMINISTRATIVE),
        (61, "61-90", CollectionStage.ADMINISTRATIVE),
        (90, "61-90", CollectionStage.ADMINISTRATIVE),
        (91, "91-180", CollectionStage.EXTRAJUDICIAL),
        (181, "180+", CollectionStage.JUDICIAL),
    ],
)
def test_every_bucket_has_its_stage(days: int, segment: str, stage: CollectionStage) -> None:
    now = datetime(2026, 1, 1, 18, tzinfo=UTC) + timedelta(days=days)
    placement = place(1000, DUE, now, "America/Mexico_City")
    assert (placement.segment, placement.stage, placement.days_past_due) == (segment, stage, days)
    assert segment in placement.reason


def test_days_past_due_turn_at_the_debtors_midnight() -> None:
    # 03:30 UTC on Jan 2 is still Jan 1 in Mexico City (UTC-6) but already Jan 2 in Madrid.
    now = datetime(2026, 1, 2, 3, 30, tzinfo=UTC)
    assert days_past_due(DUE, now, "America/Mexico_City") == 0
    assert days_past_due(DUE, now, "Europe/Madrid") == 1


def test_nothing_owed_is_settled_whatever_the_age() -> None:
    placement = place(0, DUE, datetime(2026, 6, 1, tzinfo=UTC), "America/Lima")
    assert (placement.segment, placement.stage) == ("settled", CollectionStage.SETTLED)


def test_only_payments_after_the_snapshot_reduce_it() -> None:
    as_of = datetime(2026, 3, 1, tzinfo=UTC)
    paid = [(300, as_of - timedelta(days=1)), (200, as_of + timedelta(hours=1))]
    assert outstanding(1000, as_of, paid) == 800

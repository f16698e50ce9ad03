"""The daily run of planning the day: once a UTC day, from the configured hour, again after a
restart that day (planning again adds nothing already planned)."""

from datetime import UTC, date, datetime

from recupero_orchestrator.entrypoints.scheduler import day_plan_due


def test_the_day_is_planned_once_from_its_hour() -> None:
    before = datetime(2026, 11, 4, 4, 59, tzinfo=UTC)
    at = datetime(2026, 11, 4, 5, 0, tzinfo=UTC)
    assert not day_plan_due(before, None, 5)
    assert day_plan_due(at, None, 5)  # also what a process started later that day does
    assert not day_plan_due(at.replace(hour=23), date(2026, 11, 4), 5)
    assert day_plan_due(datetime(2026, 11, 5, 6, 0, tzinfo=UTC), date(2026, 11, 4), 5)

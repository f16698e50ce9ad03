"""The figures the CLI derives from an import's report: throughput, durations, tolerant reading."""

from datetime import UTC, datetime
from typing import Any

import pytest

from recupero_cli.report import (
    ImportReport,
    Rejection,
    format_duration,
    format_rate,
    rows_per_second,
)

pytestmark = pytest.mark.unit


def test_rows_per_second_is_rows_over_elapsed_time() -> None:
    assert rows_per_second(1_000_000, 25.0) == 40_000.0


@pytest.mark.parametrize(("rows", "seconds"), [(0, 3.0), (500, 0.0), (500, -0.1)])
def test_rows_per_second_is_zero_before_time_or_rows_have_passed(rows: int, seconds: float) -> None:
    assert rows_per_second(rows, seconds) == 0.0


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(40_000.4, "40,000 rows/s"), (12.5, "12 rows/s"), (2.25, "2.2 rows/s"), (0.0, "0.0 rows/s")],
)
def test_rates_read_as_whole_rows_per_second(rate: float, shown: str) -> None:
    assert format_rate(rate) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.84, "0.8 s"),
        (59.9, "59.9 s"),
        (59.97, "1 min 00 s"),
        (125.0, "2 min 05 s"),
        (3_725.0, "1 h 02 min"),
    ],
)
def test_durations(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def api_report(**fields: Any) -> dict[str, Any]:
    """A report as `GET /v1/imports/{id}` answers it today."""
    return {
        "import_id": "5f0c4c6e-8f0e-4a51-9d7f-0a3c2b1e9d11",
        "tenant_id": "acme-bank",
        "status": "completed",
        "source": "file",
        "filename": "cartera.csv",
        "profile_name": "generic-csv",
        "profile_version": 0,
        "mode": "incremental",
        "as_of": "2025-06-30T23:59:00Z",
        "bytes_total": 2048,
        "bytes_processed": 2048,
        "rows_total": 112,
        "rows_accepted": 110,
        "rows_rejected": 2,
        "debtors_new": 50,
        "debtors_changed": 0,
        "debtors_unchanged": 0,
        "debtors_settled": 0,
        "balance_by_currency": {"ARS": 538_694_865, "CLP": 1_500},
        "error": None,
        "created_at": "2025-07-01T10:00:00Z",
        "started_at": "2025-07-01T10:00:01.5+00:00",
        "finished_at": "2025-07-01T10:00:05.5+00:00",
        "rejections": [
            {"row_number": 7, "field": "email", "value": "no-es-un-email", "reason": "invalid"}
        ],
        "rejections_csv": "/v1/imports/5f0c4c6e-8f0e-4a51-9d7f-0a3c2b1e9d11/rejections.csv",
        "a_field_added_later": {"ignored": True},
    }


def test_a_report_is_read_with_its_counts_balances_and_rejections() -> None:
    report = ImportReport.from_json(api_report())

    assert report.finished and report.tenant_id == "acme-bank"
    assert (report.rows_accepted, report.rows_rejected, report.debtors_new) == (110, 2, 50)
    assert report.balance_by_currency == {"ARS": 538_694_865, "CLP": 1_500}
    assert report.rejections == [Rejection(7, "email", "no-es-un-email", "invalid")]
    assert report.started_at == datetime(2025, 7, 1, 10, 0, 1, 500_000, tzinfo=UTC)


def test_throughput_uses_the_server_clock_for_the_work_itself() -> None:
    report = ImportReport.from_json(api_report())

    assert report.processing_seconds == 4.0
    assert rows_per_second(report.rows_total, report.processing_seconds) == 28.0


def test_a_report_without_optional_fields_still_reads() -> None:
    report = ImportReport.from_json({"import_id": "42", "status": "parsing", "rows_total": 10})

    assert not report.finished
    assert report.tenant_id is None and report.processing_seconds is None
    assert (report.rows_total, report.rows_accepted, report.balance_by_currency) == (10, 0, {})

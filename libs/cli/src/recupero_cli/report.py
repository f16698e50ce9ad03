"""An import's report as the ingest API returns it, read tolerantly, and the figures derived from it."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINISHED = frozenset({"completed", "failed"})


@dataclass(frozen=True)
class Rejection:
    row_number: int
    field: str
    value: str
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """`GET /v1/imports/{id}`. Fields the CLI does not know are ignored; missing counts read 0."""

    import_id: str
    status: str
    tenant_id: str | None = None
    profile_name: str | None = None
    profile_version: int | None = None
    mode: str | None = None
    bytes_total: int = 0
    bytes_processed: int = 0
    rows_total: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    debtors_new: int = 0
    debtors_changed: int = 0
    debtors_unchanged: int = 0
    debtors_settled: int = 0
    balance_by_currency: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    same_file_as: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rejections: list[Rejection] = field(default_factory=list)
    rejections_csv: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def processing_seconds(self) -> float | None:
        """How long the ingest worker took, by the server's own clock (no client clock skew)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max((self.finished_at - self.started_at).total_seconds(), 0.0)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ImportReport":
        def count(name: str) -> int:
            value = data.get(name)
            return int(value) if value is not None else 0

        def optional_int(name: str) -> int | None:
            value = data.get(name)
            return int(value) if value is not None else None

        def optional_str(name: str) -> str | None:
            value = data.get(name)
            return str(value) if value is not None else None

        return cls(
            import_id=str(data["import_id"]),
            status=str(data["status"]),
            tenant_id=optional_str("tenant_id"),
            profile_name=optional_str("profile_name"),
            profile_version=optional_int("profile_version"),
            mode=optional_str("mode"),
            bytes_total=count("bytes_total"),
            bytes_processed=count("bytes_processed"),
            rows_total=count("rows_total"),
            rows_accepted=count("rows_accepted"),
            rows_rejected=count("rows_rejected"),
            debtors_new=count("debtors_new"),
            debtors_changed=count("debtors_changed"),
            debtors_unchanged=count("debtors_unchanged"),
            debtors_settled=count("debtors_settled"),
            balance_by_currency={
                str(code): int(minor)
                for code, minor in (data.get("balance_by_currency") or {}).items()
            },
            error=optional_str("error"),
            same_file_as=optional_str("same_file_as"),
            started_at=_parse_time(data.get("started_at")),
            finished_at=_parse_time(data.get("finished_at")),
            rejections=[
                Rejection(
                    row_number=int(item["row_number"]),
                    field=str(item.get("field", "")),
                    value=str(item.get("value", "")),
                    reason=str(item.get("reason", "")),
                )
                for item in data.get("rejections") or []
            ],
            rejections_csv=optional_str("rejections_csv"),
        )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def rows_per_second(rows: int, seconds: float) -> float:
    """Throughput over `seconds`; 0 before any time has passed rather than a division by zero."""
    if seconds <= 0 or rows <= 0:
        return 0.0
    return rows / seconds


def format_rate(rows_per_second: float) -> str:
    """`12345.6` -> `"12,346 rows/s"`; below 10 one decimal, so a slow start does not read 0."""
    if rows_per_second < 10:
        return f"{rows_per_second:.1f} rows/s"
    return f"{rows_per_second:,.0f} rows/s"


def format_duration(seconds: float) -> str:
    """`0.84` -> `"0.8 s"`, `125.0` -> `"2 min 05 s"`, `3725` -> `"1 h 02 min"`."""
    if seconds < 59.95:  # would print as "60.0 s"
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"

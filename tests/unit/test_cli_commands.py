"""The `recupero` commands as a user sees them, against a fake ingest answering over HTTP.

The fake stands in for the network (an httpx transport), so these tests pin what the CLI prints and
its exit codes for every outcome, including the ones the running stack rarely produces (a failed
import, a key of another tenant). tests/e2e/test_cli.py drives the real stack.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from recupero_cli import main
from recupero_cli.main import app

pytestmark = pytest.mark.unit

TENANT = "acme-bank"
KEY = "rk_acme"
IMPORT_ID = "5f0c4c6e-8f0e-4a51-9d7f-0a3c2b1e9d11"
REJECTIONS_CSV = (
    "row_number,field,value,reason\r\n"
    "7,email,no-es-un-email,not a valid email address\r\n"
    "8,due_on,31/02/2024,not a date\r\n"
)


@dataclass
class FakeIngest:
    """Answers like ingest's API; each GET of the import moves it one step further."""

    tenant_id: str | None = TENANT
    outcome: str = "completed"
    same_file_as: str | None = None
    profiles: list[str] = field(default_factory=lambda: ["generic-csv", "banco-andino"])
    lists_profiles: bool = True
    uploaded: bytes = b""
    form: dict[str, str] = field(default_factory=dict)
    polls: int = 0

    def report(self, **fields: Any) -> dict[str, Any]:
        report: dict[str, Any] = {
            "import_id": IMPORT_ID,
            "status": "received",
            "profile_name": self.form.get("profile", "generic-csv"),
            "profile_version": 0,
            "mode": self.form.get("mode", "incremental"),
            "bytes_total": len(self.uploaded),
            "bytes_processed": 0,
            "rows_total": 0,
            "rows_accepted": 0,
            "rows_rejected": 0,
            "debtors_new": 0,
            "debtors_changed": 0,
            "debtors_unchanged": 0,
            "debtors_settled": 0,
            "balance_by_currency": {},
            "error": None,
            "rejections": [],
            "rejections_csv": f"/v1/imports/{IMPORT_ID}/rejections.csv",
        }
        if self.tenant_id is not None:
            report["tenant_id"] = self.tenant_id
        return {**report, **fields}

    def final(self) -> dict[str, Any]:
        if self.outcome == "failed":
            return self.report(status="failed", error="the file is not UTF-8 nor Latin-1")
        return self.report(
            status="completed",
            bytes_processed=len(self.uploaded),
            rows_total=112,
            rows_accepted=110,
            rows_rejected=2,
            debtors_new=50,
            balance_by_currency={"ARS": 538_694_865, "CLP": 12_345_678},
            same_file_as=self.same_file_as,
            started_at="2025-07-01T10:00:01+00:00",
            finished_at="2025-07-01T10:00:03+00:00",
            rejections=[
                {"row_number": 7, "field": "email", "value": "no-es-un-email", "reason": "bad"},
                {"row_number": 8, "field": "due_on", "value": "[31/02/2024]", "reason": "bad"},
            ],
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"detail": "unknown API key"})
        path = request.url.path
        if request.method == "GET" and path == "/v1/profiles" and self.lists_profiles:
            return httpx.Response(
                200,
                json=[
                    {"name": name, "version": 0, "profile": {"format": "csv", "description": name}}
                    for name in self.profiles
                ],
            )
        if request.method == "POST" and path == "/v1/portfolios":
            self.form, self.uploaded = parse_multipart(request)
            if self.form["profile"] not in self.profiles:
                profile = self.form["profile"]
                detail = (
                    f"profile {profile!r} does not exist; PUT /v1/profiles/{profile} to create it"
                )
                return httpx.Response(422, json={"detail": detail})
            return httpx.Response(202, json=self.report())
        if request.method == "GET" and path == f"/v1/imports/{IMPORT_ID}":
            self.polls += 1
            halfway = self.report(
                status="parsing", bytes_processed=len(self.uploaded) // 2, rows_total=56
            )
            return httpx.Response(200, json=[halfway, self.final()][min(self.polls, 2) - 1])
        if request.method == "GET" and path == f"/v1/imports/{IMPORT_ID}/rejections.csv":
            return httpx.Response(200, text=REJECTIONS_CSV)
        return httpx.Response(404, json={"detail": "Not Found"})


def parse_multipart(request: httpx.Request) -> tuple[dict[str, str], bytes]:
    body = request.read()
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    form: dict[str, str] = {}
    uploaded = b""
    for part in body.split(b"--" + boundary)[1:-1]:
        headers, _, content = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', headers)
        assert name is not None
        if b"filename=" in headers:
            uploaded = content[:-2]
        else:
            form[name.group(1).decode()] = content[:-2].decode()
    return form, uploaded


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "POLL_SECONDS", 0.0)
    monkeypatch.delenv("RECUPERO_API_KEY", raising=False)
    monkeypatch.delenv("RECUPERO_INGEST_URL", raising=False)
    monkeypatch.delenv("RECUPERO_TENANT", raising=False)


@pytest.fixture
def portfolio(tmp_path: Path) -> Path:
    path = tmp_path / "cartera.csv"
    path.write_bytes(b"debtor_id,name\n" + b"C000001,Ana\n" * 5_000)
    return path


@pytest.fixture
def ingest() -> Iterator[FakeIngest]:
    yield FakeIngest()


def recupero(ingest: FakeIngest, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), obj=httpx.MockTransport(ingest.handle))


def test_import_uploads_the_file_follows_it_and_prints_the_report(
    ingest: FakeIngest, portfolio: Path
) -> None:
    result = recupero(
        ingest, "import", str(portfolio), "--tenant", TENANT, "--api-key", KEY, "--mode", "full"
    )

    assert result.exit_code == 0, result.output
    assert ingest.uploaded == portfolio.read_bytes()
    assert ingest.form == {"profile": "generic-csv", "mode": "full"}
    assert re.search(r"Rows accepted\W+110\b", result.stdout)
    assert re.search(r"Rows rejected\W+2\b", result.stdout)
    assert re.search(r"Debtors new\W+50\b", result.stdout)
    assert "ARS 5,386,948.65" in result.stdout
    assert "CLP 12,345,678" in result.stdout
    assert "56 rows/s" in result.stdout  # 112 rows in the 2 s between started_at and finished_at
    # Rejected values are shown as sent, never read as rich markup.
    assert "no-es-un-email" in result.stdout and "[31/02/2024]" in result.stdout
    assert f"/v1/imports/{IMPORT_ID}/rejections.csv" in result.stdout


def test_the_same_file_again_says_which_import_answered_for_it(
    ingest: FakeIngest, portfolio: Path
) -> None:
    ingest.same_file_as = "0b5f3c4e-0000-4000-8000-000000000001"
    result = recupero(ingest, "import", str(portfolio), "--tenant", TENANT, "--api-key", KEY)
    assert result.exit_code == 0, result.output
    assert re.search(r"Same file as\W+import 0b5f3c4e-0000-4000-8000-000000000001", result.stdout)
    assert "nothing changed" in result.stdout


def test_rejections_out_saves_every_rejected_row(
    ingest: FakeIngest, portfolio: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rejected.csv"

    result = recupero(
        ingest,
        "import",
        str(portfolio),
        "-t",
        TENANT,
        "--api-key",
        KEY,
        "--rejections-out",
        str(out),
    )

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == REJECTIONS_CSV.encode()
    assert f"saved to {out}" in result.stdout


def test_a_failed_import_exits_1_with_the_reason(ingest: FakeIngest, portfolio: Path) -> None:
    ingest.outcome = "failed"

    result = recupero(ingest, "import", str(portfolio), "-t", TENANT, "--api-key", KEY)

    assert result.exit_code == 1
    assert "import failed" in result.stderr and "not UTF-8 nor Latin-1" in result.stderr


def test_a_wrong_key_exits_2_before_uploading(ingest: FakeIngest, portfolio: Path) -> None:
    result = recupero(ingest, "import", str(portfolio), "-t", TENANT, "--api-key", "rk_wrong")

    assert result.exit_code == 2
    assert "refused the API key for tenant 'acme-bank'" in result.stderr
    assert "unknown API key" in result.stderr
    assert ingest.uploaded == b""


def test_an_unknown_profile_exits_2_naming_the_ones_there_are(
    ingest: FakeIngest, portfolio: Path
) -> None:
    result = recupero(
        ingest, "import", str(portfolio), "-t", TENANT, "--api-key", KEY, "--profile", "nope"
    )

    assert result.exit_code == 2
    assert "profile 'nope' does not exist" in result.stderr
    assert "generic-csv, banco-andino" in result.stderr
    assert ingest.uploaded == b""


def test_an_unknown_profile_is_refused_by_ingest_when_profiles_cannot_be_listed(
    ingest: FakeIngest, portfolio: Path
) -> None:
    ingest.lists_profiles = False

    result = recupero(
        ingest, "import", str(portfolio), "-t", TENANT, "--api-key", KEY, "--profile", "nope"
    )

    assert result.exit_code == 2
    assert "profile 'nope' does not exist; PUT /v1/profiles/nope to create it" in result.stderr


def test_a_key_of_another_tenant_is_caught(ingest: FakeIngest, portfolio: Path) -> None:
    ingest.tenant_id = "other-bank"

    result = recupero(ingest, "import", str(portfolio), "-t", TENANT, "--api-key", KEY)

    assert result.exit_code == 2
    assert "belongs to tenant 'other-bank', not 'acme-bank'" in result.stderr


def test_reports_without_a_tenant_skip_the_tenant_check(
    ingest: FakeIngest, portfolio: Path
) -> None:
    ingest.tenant_id = None

    result = recupero(ingest, "import", str(portfolio), "-t", TENANT, "--api-key", KEY)

    assert result.exit_code == 0, result.output


def test_no_wait_returns_once_ingest_has_the_file(ingest: FakeIngest, portfolio: Path) -> None:
    result = recupero(ingest, "import", str(portfolio), "-t", TENANT, "--api-key", KEY, "--no-wait")

    assert result.exit_code == 0, result.output
    assert ingest.polls == 0
    assert f"/v1/imports/{IMPORT_ID}" in result.stdout


def test_as_of_needs_a_utc_offset(ingest: FakeIngest, portfolio: Path) -> None:
    naive = recupero(
        ingest, "import", str(portfolio), "-t", TENANT, "--api-key", KEY, "--as-of", "2025-06-30"
    )
    aware = recupero(
        ingest,
        "import",
        str(portfolio),
        *("-t", TENANT, "--api-key", KEY, "--as-of", "2025-06-30T23:59:00-05:00"),
    )

    assert naive.exit_code == 2 and "no UTC offset" in naive.stderr
    assert aware.exit_code == 0, aware.output
    assert ingest.form["as_of"] == "2025-06-30T23:59:00-05:00"


def test_a_missing_key_exits_2_saying_how_to_give_one(
    ingest: FakeIngest, portfolio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = recupero(ingest, "import", str(portfolio), "--tenant", TENANT)

    assert result.exit_code == 2
    assert "--api-key" in result.stderr and "RECUPERO_API_KEY" in result.stderr


def test_a_missing_file_is_a_usage_error(ingest: FakeIngest, tmp_path: Path) -> None:
    result = recupero(ingest, "import", str(tmp_path / "none.csv"), "-t", TENANT)

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_an_unreachable_ingest_exits_2_and_suggests_starting_the_stack(portfolio: Path) -> None:
    def nothing_listening(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = CliRunner().invoke(
        app,
        ["import", str(portfolio), "-t", TENANT, "--api-key", KEY],
        obj=httpx.MockTransport(nothing_listening),
    )

    assert result.exit_code == 2
    assert "cannot reach ingest at http://127.0.0.1:8001: is the stack up? `make up`" in (
        result.stderr
    )


def test_profiles_are_listed_as_a_table(ingest: FakeIngest) -> None:
    result = recupero(ingest, "profiles", "--tenant", TENANT, "--api-key", KEY)

    assert result.exit_code == 0, result.output
    assert re.search(r"generic-csv\s+0 \(shipped\)\s+csv", result.stdout)
    assert "banco-andino" in result.stdout

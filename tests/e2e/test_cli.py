"""`recupero`, the command line a bank's integration team uses, against the running stack."""

import csv
import io
import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from recupero_cli.main import app
from recupero_cli.money import currency_decimals, format_money
from recupero_devstack.sample import sample_portfolio
from tests.e2e.conftest import StartStack

DEBTORS = 50
INVALID_ROWS = 2


def figure(output: str, label: str) -> int:
    """A count from the report table as printed, e.g. `Rows accepted   1,234`."""
    found = re.search(rf"{label}\W+([\d,]+)\b", output)
    assert found, f"no {label!r} in:\n{output}"
    return int(found.group(1).replace(",", ""))


def balances_in(csv_text: str) -> Counter[str]:
    """What the valid rows add up to per currency, credit notes netted: minor units."""
    totals: Counter[str] = Counter()
    for row in csv.DictReader(io.StringIO(csv_text)):
        if row["debtor_id"].startswith("X"):  # the sample's invalid rows
            continue
        minor = int(Decimal(row["amount"]).scaleb(currency_decimals(row["currency"])))
        sign = -1 if row["document_type"] == "credit_note" else 1
        totals[row["currency"]] += sign * minor
    return totals


def test_import_shows_progress_report_and_rejections_then_reimport_is_unchanged(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = start_stack()
    tenant = stack.tenants[0]
    ingest = stack.url("ingest")
    csv_text = sample_portfolio(DEBTORS, seed=3, invalid_rows=INVALID_ROWS, id_prefix="C")
    portfolio = tmp_path / "cartera.csv"
    portfolio.write_text(csv_text, encoding="utf-8")
    data_rows = csv_text.count("\n") - 1
    runner = CliRunner(env={"RECUPERO_API_KEY": None, "RECUPERO_INGEST_URL": ingest})
    key = ("--tenant", tenant.tenant_id, "--api-key", tenant.api_key)
    rejected_csv = tmp_path / "rechazos.csv"

    # 1. The first import: every debtor is new, the two bad rows are rejected and saved.
    first = runner.invoke(
        app, ["import", str(portfolio), *key, "--rejections-out", str(rejected_csv)]
    )

    assert first.exit_code == 0, first.output
    assert figure(first.stdout, "Rows read") == data_rows
    assert figure(first.stdout, "Rows accepted") == data_rows - INVALID_ROWS
    assert figure(first.stdout, "Rows rejected") == INVALID_ROWS
    assert figure(first.stdout, "Debtors new") == DEBTORS
    for currency, minor in balances_in(csv_text).items():
        assert format_money(minor, currency) in first.stdout
    assert "rows/s" in first.stdout
    assert f"saved to {rejected_csv}" in first.stdout
    with rejected_csv.open(newline="", encoding="utf-8") as saved:
        rows = list(csv.reader(saved))
    assert rows[0] == ["row_number", "field", "value", "reason"]
    assert len(rows) == 1 + INVALID_ROWS
    # The rows as a spreadsheet numbers them: the invalid ones come last in the sample file.
    assert {int(row[0]) for row in rows[1:]} == {data_rows, data_rows + 1}

    # 2. The same file again changes nothing.
    again = runner.invoke(app, ["import", str(portfolio), *key])

    assert again.exit_code == 0, again.output
    assert figure(again.stdout, "Debtors unchanged") == DEBTORS
    assert figure(again.stdout, "Debtors new") == 0
    assert figure(again.stdout, "Debtors changed") == 0

    # 3. A wrong key and an unknown profile are refused with a reason, before any upload.
    wrong_key = runner.invoke(
        app, ["import", str(portfolio), "--tenant", tenant.tenant_id, "--api-key", "rk_wrong"]
    )
    unknown_profile = runner.invoke(app, ["import", str(portfolio), *key, "--profile", "nope"])

    assert wrong_key.exit_code == 2, wrong_key.output
    assert f"refused the API key for tenant {tenant.tenant_id!r}" in wrong_key.stderr
    assert "unknown API key" in wrong_key.stderr
    assert unknown_profile.exit_code == 2, unknown_profile.output
    assert "profile 'nope' does not exist" in unknown_profile.stderr

    # 4. The installed `recupero` command lists the profiles the import can use.
    profiles = subprocess.run(
        [str(Path(sys.executable).with_name("recupero")), "profiles", *key, "--url", ingest],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert profiles.returncode == 0, profiles.stderr
    assert re.search(r"generic-csv\s+0 \(shipped\)\s+csv", profiles.stdout), profiles.stdout

"""The demo: a 1,000-debtor portfolio through the running local stack, then a summary.

    uv run python deploy/local/demo.py      (after `stack.py up`; `make demo` does both)

Uploads `deploy/demo/portfolio.csv` as the demo tenant, waits until the contact policy has judged
every debtor's first reminder and the allowed ones were emailed, pays three debtors in full, waits
until those payments are applied, and prints what happened and where to look next.

The contact policy is the real one, on the wall clock: run at night or on a Sunday, reminders wait
for the debtors' contact hours (the demo shows where they went and why), and Colombian debtors,
who authorised no channel in this portfolio, are not emailed at all.
"""

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from recupero_cli.money import format_money

ROOT = Path(__file__).resolve().parents[2]
PORTFOLIO = ROOT / "deploy" / "demo" / "portfolio.csv"
KEY = ROOT / "var" / "demo-tenant.key"
PORTAL, INGEST, PAYMENTS = "http://127.0.0.1:8000", "http://127.0.0.1:8001", "http://127.0.0.1:8005"
ORCHESTRATOR = "http://127.0.0.1:8003"
SMTP_API = "http://127.0.0.1:8025"
PAID_DEBTORS = ("D000001", "D000002", "D000003")


def wait_for(what: str, done: Callable[[], bool], timeout: float = 300) -> None:
    print(f"  waiting for {what} ...", flush=True)
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}; see var/log/stack.log")
        time.sleep(1)


def main() -> None:
    client = httpx.Client(
        headers={"Authorization": f"Bearer {KEY.read_text().strip()}"}, timeout=120
    )

    def summary() -> dict[str, Any]:
        result: dict[str, Any] = client.get(f"{PORTAL}/v1/summary").json()
        return result

    def unique_emails() -> int:
        messages = httpx.get(f"{SMTP_API}/messages", timeout=10).json()
        return len({message["message_id"] for message in messages})

    def decisions(since: datetime) -> dict[str, Any]:
        result: dict[str, Any] = client.get(
            f"{ORCHESTRATOR}/v1/contact-decisions/summary", params={"since": since.isoformat()}
        ).json()
        return result

    before = summary()
    began = datetime.now(UTC)
    print(f"1. importing {PORTFOLIO.relative_to(ROOT)} ...", flush=True)
    started = time.monotonic()
    response = client.post(
        f"{INGEST}/v1/portfolios?wait=120",
        files={"file": (PORTFOLIO.name, PORTFOLIO.read_bytes(), "text/csv")},
    )
    report = response.json()
    if response.status_code != 202 or report["status"] != "completed":
        sys.exit(f"import failed: {response.status_code} {response.text}")
    print(
        f"  rows {report['rows_total']}, accepted {report['rows_accepted']}, rejected "
        f"{report['rows_rejected']}; debtors new {report['debtors_new']}, changed "
        f"{report['debtors_changed']}, unchanged {report['debtors_unchanged']}"
    )
    for rejection in report["rejections"][:5]:
        print(
            f"  rejected row {rejection['row_number']}: {rejection['field']}="
            f"{rejection['value']!r}: {rejection['reason']}"
        )
    imported = report["debtors_new"] + report["debtors_changed"]

    print(
        "2-4. segmenting, scheduling, judging each reminder by the contact policy ...", flush=True
    )
    wait_for(
        "the contact policy's decision on every debtor's first reminder",
        lambda: decisions(began)["debtors"] >= imported,
    )
    judged = decisions(began)["rules"]
    allowed = sum(rule["debtors"] for rule in judged if rule["verdict"] == "allowed")
    for rule in judged:
        slot = rule["earliest_moved_to"]
        later = f", earliest new slot {slot}" if slot else ""
        print(f"  {rule['verdict']:<8} {rule['debtors']:>5} debtor(s)  [{rule['rule_id']}]{later}")
    wait_for(
        "the allowed reminders to be emailed",
        lambda: summary()["messages_sent"] - before["messages_sent"] >= allowed,
    )

    print(f"5. paying {len(PAID_DEBTORS)} debtors in full ...", flush=True)
    for debtor_id in PAID_DEBTORS:
        debtor = client.get(f"{PORTAL}/v1/debtors/{debtor_id}").json()
        if debtor["balance"]["amount_minor"] <= 0:
            continue
        paid = client.post(
            f"{PAYMENTS}/v1/payments",
            json={
                "debtor_id": debtor_id,
                "amount": debtor["balance"],
                "method": "bank_transfer",
                "external_reference": f"DEMO-{debtor_id}-{int(time.time())}",
            },
        )
        paid.raise_for_status()
    wait_for(
        "the payments to settle those debtors",
        lambda: all(
            client.get(f"{PORTAL}/v1/debtors/{d}").json()["stage"] == "settled"
            for d in PAID_DEBTORS
        ),
    )
    elapsed = time.monotonic() - started
    totals = summary()
    print()
    print(f"Recupero demo finished in {elapsed:.1f} s")
    print(f"  debtors imported     {totals['debtors_imported']}")
    print(f"  debtors segmented    {totals['debtors_segmented']}")
    print(f"  actions due          {totals['actions_due']}")
    print(f"  messages sent        {totals['messages_sent']}")
    print(f"  emails at SMTP sink  {unique_emails()}")
    print(f"  why (not) contacted  {ORCHESTRATOR}/v1/debtors/<id>/contact-decisions")
    print(f"  payments applied     {totals['payments_applied']}")
    for currency, minor in sorted(totals["outstanding_by_currency"].items()):
        print(f"  outstanding          {format_money(minor, currency)}")
    print()
    print("Where to look next:")
    print(f"  API docs      {PORTAL}/docs (portal), {INGEST}/docs (ingest), {PAYMENTS}/docs")
    print(f"  API key       {KEY.read_text().strip()}  (tenant demo-bank; kept in var/)")
    print(f"  one debtor    curl -H 'Authorization: Bearer <key>' {PORTAL}/v1/debtors/D000001")
    print(f"  emails        {SMTP_API}/messages (files in var/mail/)")
    print("  logs          var/log/stack.log;  `make status`, `make down`")


if __name__ == "__main__":
    main()

"""The demo: a 1,000-debtor portfolio through the running local stack, then a summary.

    uv run python deploy/local/demo.py      (after `stack.py up`; `make demo` does both)

Uploads `deploy/demo/portfolio.csv` as the demo tenant, waits until the contact policy has judged
every debtor's first reminder and the allowed ones were emailed, pays three debtors in full, waits
until those payments are applied. Then every channel: it activates a strategy for written-off
debtors whose steps go out on WhatsApp, SMS, email, a formal letter and an IVR call, imports a few
written-off debtors, and counts per channel what the local providers (the WhatsApp and Twilio
peers, the SMTP sink, the notifier's letters) received and reported delivered. It prints what
happened and where to look next.

The contact policy is the real one, on the wall clock: run at night or on a Sunday, reminders wait
for the debtors' contact hours (the demo shows where they went and why), and Colombian debtors,
who authorised no channel in the portfolio, are not emailed at all. The written-off debtors are
placed where contact is allowed now (US rules, in the time zone where it is afternoon; see
`recupero_devstack.sample.afternoon_zone`): the policy is not bypassed, the debtors are chosen. One
Colombian debtor comes with the channels it authorised as an import attribute, and the demo shows
what the orchestrator recorded from it.
"""

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from recupero_cli.money import format_money
from recupero_devstack.layout import stack_layout
from recupero_devstack.sample import afternoon_zone

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = stack_layout(ROOT)
PORTFOLIO = ROOT / "deploy" / "demo" / "portfolio.csv"
KEY = LAYOUT.key
PORTAL, INGEST, PAYMENTS = LAYOUT.url("portal-api"), LAYOUT.url("ingest"), LAYOUT.url("payments")
ORCHESTRATOR = LAYOUT.url("orchestrator")
SMTP_API = LAYOUT.url("smtp-http")
NOTIFIER = LAYOUT.url("notifier")
WHATSAPP_PEER, TWILIO_PEER = LAYOUT.url("whatsapp"), LAYOUT.url("twilio")
PAID_DEBTORS = ("D000001", "D000002", "D000003")
# The call goes last: the demo's callees press 1, a promise to pay, which pauses the strategy.
CHANNELS = ("whatsapp", "sms", "email", "letter", "ivr")
# The default rule set places debtors the creditor wrote off in segment `written-off`.
SHOWCASE_STRATEGY = {
    "strategy_id": "written-off-recovery",
    "version": 1,
    "name": "Written-off recovery: every channel, one after the other",
    "segments": ["written-off"],
    "steps": [
        {
            "step_id": channel,
            "timing": {"anchor": "segment_entry" if index == 0 else "previous_step", "days": 0},
            "channel": channel,
            "template": "formal-letter" if channel == "letter" else "first-reminder",
        }
        for index, channel in enumerate(CHANNELS)
    ],
}
SHOWCASE_DEBTORS = 6
AUTHORISING_DEBTOR = "W-CO-1"


def wait_for(what: str, done: Callable[[], bool], timeout: float = 300) -> None:
    print(f"  waiting for {what} ...", flush=True)
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}; see {LAYOUT.shown(LAYOUT.log)}")
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

    print("6. every channel: a strategy for written-off debtors ...", flush=True)
    showcase = every_channel(client, unique_emails)
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
    print("  per channel, as the local providers saw it (written-off debtors):")
    for line in showcase:
        print(f"    {line}")
    print()
    print("Where to look next:")
    print(f"  API docs      {PORTAL}/docs (portal), {INGEST}/docs (ingest), {PAYMENTS}/docs")
    key = KEY.read_text().strip()
    print(f"  API key       {key}  (tenant demo-bank; kept in {LAYOUT.shown(KEY)})")
    print(f"  one debtor    curl -H 'Authorization: Bearer <key>' {PORTAL}/v1/debtors/D000001")
    print(f"  emails        {SMTP_API}/messages (files in {LAYOUT.shown(LAYOUT.var / 'mail')}/)")
    print(f"  logs          {LAYOUT.shown(LAYOUT.log)};  `make status`, `make down`")


def _showcase_records(run: str) -> list[dict[str, Any]]:
    """Written-off debtors where contact is allowed now, and one Colombian debtor whose import
    carries the channels it authorised."""
    zone = afternoon_zone(datetime.now(UTC))
    records = []
    for number in range(1, SHOWCASE_DEBTORS + 1):
        debtor_id = f"W-{run}-{number}"
        records.append(
            {
                "debtor_id": debtor_id,
                "name": f"Written-off debtor {number}",
                "email": f"{debtor_id.lower()}@deudores.example.com",
                "phone": f"+1212555{1000 + number}",
                "country": "US",
                "time_zone": zone,
                "locale": "en-US",
                # A letter goes out only to a debtor with a postal address.
                "address_line_1": f"{100 + number} Broadway",
                "city": "New York",
                "region": "NY",
                "postal_code": "10006",
                "document_id": f"{debtor_id}-1",
                "due_on": "2025-01-15",
                "amount": "1250.00",
                "currency": "USD",
                "attributes": {"written_off": "yes"},
            }
        )
    records.append(
        {
            "debtor_id": AUTHORISING_DEBTOR,
            "name": "Camila Rojas",
            "email": "camila.rojas@deudores.example.com",
            "phone": "+573001234567",
            "country": "CO",
            "document_id": f"{AUTHORISING_DEBTOR}-1",
            "due_on": "2026-10-01",
            "amount": "180000.00",
            "currency": "COP",
            "attributes": {"canales_autorizados": "whatsapp;email"},
        }
    )
    return records


def _peer(url: str, what: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = httpx.get(f"{url}/_peer/{what}", timeout=10).json()
    return result


# What the second figure of each channel counts, as its provider tells it.
OUTCOMES = {
    "whatsapp": "delivered (status webhooks)",
    "sms": "delivered (status callbacks)",
    "email": "accepted by the SMTP server",
    "letter": "PDFs in the print queue",
    "ivr": "answered, digit pressed",
}


def _provider_counts(client: httpx.Client, emails: Callable[[], int]) -> dict[str, list[int]]:
    """Per channel: [sent, outcome] as the providers saw them (totals since the stack started)."""
    whatsapp, twilio = _peer(WHATSAPP_PEER, "requests"), _peer(TWILIO_PEER, "requests")
    whatsapp_back, twilio_back = _peer(WHATSAPP_PEER, "callbacks"), _peer(TWILIO_PEER, "callbacks")

    def answered(callbacks: list[dict[str, Any]], kind: str) -> int:
        return sum(
            c["kind"] == kind and c["status_code"] is not None and 200 <= c["status_code"] < 300
            for c in callbacks
        )

    def delivered_on_whatsapp() -> int:
        # The peer, as Meta does, puts the statuses ready at once into one notification.
        return sum(
            status["status"] == "delivered"
            for c in whatsapp_back
            if c["status_code"] is not None and 200 <= c["status_code"] < 300
            for entry in c["body"]["entry"]
            for change in entry["changes"]
            for status in change["value"].get("statuses", [])
        )

    letters = client.get(f"{NOTIFIER}/v1/letters").json()
    sent_emails = emails()
    return {
        "whatsapp": [len(whatsapp), delivered_on_whatsapp()],
        "sms": [
            sum(r["kind"] == "message" for r in twilio),
            answered(twilio_back, "status:delivered"),
        ],
        "ivr": [sum(r["kind"] == "call" for r in twilio), answered(twilio_back, "gather")],
        "email": [sent_emails, sent_emails],
        "letter": [len(letters), sum(letter["status"] == "pending_print" for letter in letters)],
    }


def every_channel(client: httpx.Client, emails: Callable[[], int]) -> list[str]:
    """Upload and activate the written-off strategy, import its debtors, wait until every channel
    went out for each of them, and return one line per channel (plus the authorisations)."""
    url = f"{ORCHESTRATOR}/v1/strategies/{SHOWCASE_STRATEGY['strategy_id']}/versions/1"
    client.put(url, json=SHOWCASE_STRATEGY).raise_for_status()
    client.post(f"{url}/activate").raise_for_status()
    before = _provider_counts(client, emails)
    run = datetime.now(UTC).strftime("%H%M%S")
    response = client.post(f"{INGEST}/v1/debts:batch", json={"records": _showcase_records(run)})
    if response.status_code != 200 or response.json()["rows_rejected"]:
        sys.exit(f"the written-off debtors were not imported: {response.text}")
    print(f"  {SHOWCASE_DEBTORS} written-off debtors in {afternoon_zone(datetime.now(UTC))}")

    def grown() -> dict[str, list[int]]:
        now = _provider_counts(client, emails)
        return {c: [a - b for a, b in zip(now[c], before[c], strict=True)] for c in CHANNELS}

    wait_for(
        "each of them to be reached on every channel",
        lambda: all(min(counts) >= SHOWCASE_DEBTORS for counts in grown().values()),
        timeout=120,
    )
    lines = [
        f"{channel:<9} sent {sent:>3}, {outcome:>3} {OUTCOMES[channel]}"
        for channel, (sent, outcome) in grown().items()
    ]
    judged = client.get(f"{ORCHESTRATOR}/v1/debtors/W-{run}-1/contact-decisions").json()
    lines.append(
        "policy on W-"
        + run
        + "-1: "
        + ", ".join(f"{d['channel']} {d['verdict']} [{d['rule_id']}]" for d in judged)
    )
    authorised: dict[str, Any] = {}

    def recorded() -> bool:
        nonlocal authorised
        authorised = client.get(
            f"{ORCHESTRATOR}/v1/debtors/{AUTHORISING_DEBTOR}/authorised-channels"
        ).json()
        return bool(authorised["channels"])

    wait_for(f"{AUTHORISING_DEBTOR}'s authorised channels from its import", recorded, timeout=60)
    channels = ", ".join(f"{c['channel']} ({c['source']})" for c in authorised["channels"])
    lines.append(f"{AUTHORISING_DEBTOR} (Colombia) authorised by its import: {channels}")
    return lines


if __name__ == "__main__":
    main()

"""One portfolio through all six services, driven as a client would drive the running stack."""

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import httpx

from recupero_devstack.sample import sample_portfolio
from tests.e2e.cloudevents_check import validate_tenant_events
from tests.e2e.conftest import Stack, StartStack
from tests.e2e.reachable import reachable_now

DEBTORS = 12


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def mailbox(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Messages the SMTP server received, per recipient."""
    by_recipient: dict[str, list[dict[str, Any]]] = {}
    for message in stack.smtp.messages():
        for recipient in message["rcpt_tos"]:
            by_recipient.setdefault(recipient, []).append(message)
    return by_recipient


def subject_of(stack: Stack, message: dict[str, Any]) -> str:
    raw = stack.smtp.raw_message(message["id"])
    assert raw is not None
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"])))


def test_portfolio_to_emails_payment_stops_reminders_and_timeline(start_stack: StartStack) -> None:
    # The second reminder comes 12 s after the first, so the test can watch it (not) happen.
    stack = start_stack(
        ("acme-bank", "other-bank"),
        RECUPERO_REMINDER_INTERVAL_SECONDS="12",
        RECUPERO_FIRST_REMINDER_DELAY_SECONDS="0",
    )
    tenant, other_tenant = stack.tenants
    # Debtors the contact policy lets us email now (see tests/e2e/reachable.py).
    csv_text = reachable_now(sample_portfolio(DEBTORS, seed=11, invalid_rows=2, id_prefix="E"))
    client = httpx.Client(timeout=30)

    # 1. Upload the portfolio; bad rows are reported with row, field and reason.
    response = client.post(
        f"{stack.url('ingest')}/v1/portfolios?wait=120",
        headers=tenant.headers,
        files={"file": ("cartera.csv", csv_text.encode(), "text/csv")},
    )
    assert response.status_code == 202, response.text
    report = response.json()
    assert report["status"] == "completed", report
    assert report["debtors_new"] == DEBTORS
    assert report["rows_rejected"] == 2
    assert {r["field"] for r in report["rejections"]} == {"email", "due_on"}
    again = client.get(
        f"{stack.url('ingest')}/v1/imports/{report['import_id']}", headers=tenant.headers
    )
    assert again.json()["rejections"] == report["rejections"]

    # 2-4. Every debtor receives the first reminder by email, in Spanish.
    recipients = {f"e{n:06d}@deudores.example.com" for n in range(1, DEBTORS + 1)}
    wait_for("first reminders", lambda: recipients <= set(mailbox(stack)))
    first = mailbox(stack)
    assert all(len(first[r]) == 1 for r in recipients)
    assert "recordatorio" in subject_of(stack, first["e000001@deudores.example.com"][0]).lower()

    # 5. Debtor E000001 pays the whole balance shown by the portal.
    portal = f"{stack.url('portal-api')}/v1/debtors/E000001"
    view = wait_for(
        "the debtor's segment in the portal",
        lambda: (
            (r := client.get(portal, headers=tenant.headers)).status_code == 200
            and r.json()["segment"]
            and r.json()
        ),
    )
    balance = view["balance"]
    paid = client.post(
        f"{stack.url('payments')}/v1/payments",
        headers=tenant.headers,
        json={"debtor_id": "E000001", "amount": balance, "external_reference": "TRX-1"},
    )
    assert paid.status_code == 201, paid.text

    # The orchestrator cancels the paid debtor's pending reminder...
    case_url = f"{stack.url('orchestrator')}/v1/cases/E000001"
    case = wait_for(
        "the paid debtor's case to close",
        lambda: (
            (c := client.get(case_url, headers=tenant.headers).json())["status"] == "closed" and c
        ),
    )
    assert [a["status"] for a in case["actions"]] == ["fired", "cancelled"]

    # ...so when the others get their second reminder, the paid debtor does not.
    others = recipients - {"e000001@deudores.example.com"}
    wait_for(
        "second reminders", lambda: all(len(mailbox(stack).get(r, [])) == 2 for r in others), 45
    )
    time.sleep(1)
    assert len(mailbox(stack)["e000001@deudores.example.com"]) == 1

    # 6. The portal shows the debtor's debts, zero balance and the whole story.
    view = wait_for(
        "the payment in the portal",
        lambda: (
            (v := client.get(portal, headers=tenant.headers).json())["balance"]["amount_minor"] == 0
            and v
        ),
    )
    topics = Counter(entry["topic"] for entry in view["timeline"])
    assert topics["debt-imported"] == 1
    assert topics["action-due"] == 1
    assert topics["message-sent"] == 1
    assert topics["payment-received"] == 1
    assert topics["debtor-segmented"] >= 2  # placed on import, settled after the payment
    assert view["stage"] == "settled"
    assert view["documents"]

    # A debtor promises to pay on the portal; the promise joins their timeline.
    promised_on = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    promise = client.post(
        f"{stack.url('portal-api')}/v1/debtors/E000002/promises",
        headers=tenant.headers,
        json={"amount": {"amount_minor": 10_000, "currency": "USD"}, "promised_on": promised_on},
    )
    assert promise.status_code == 422
    assert promise.json()["detail"][0]["loc"] == ["body", "amount", "currency"]
    currency = client.get(
        f"{stack.url('portal-api')}/v1/debtors/E000002", headers=tenant.headers
    ).json()["balance"]["currency"]
    promise = client.post(
        f"{stack.url('portal-api')}/v1/debtors/E000002/promises",
        headers=tenant.headers,
        json={"amount": {"amount_minor": 10_000, "currency": currency}, "promised_on": promised_on},
    )
    assert promise.status_code == 201, promise.text
    wait_for(
        "the promise on the timeline",
        lambda: any(
            entry["topic"] == "promise-registered"
            for entry in client.get(
                f"{stack.url('portal-api')}/v1/debtors/E000002", headers=tenant.headers
            ).json()["timeline"]
        ),
    )

    # Every message this tenant caused, on all six topics, reads with the official CloudEvents
    # SDK and matches its published JSON Schema.
    counts = validate_tenant_events(stack.env["RECUPERO_KAFKA_BOOTSTRAP_SERVERS"], tenant.tenant_id)
    assert counts["debt-imported"] == DEBTORS
    assert counts["action-due"] == counts["message-sent"] == 2 * DEBTORS - 1
    assert counts["payment-received"] == counts["promise-registered"] == 1
    assert counts["debtor-segmented"] == DEBTORS + 1

    # Another tenant's key sees nothing of this tenant's debtors; no key is refused.
    assert client.get(portal, headers=other_tenant.headers).status_code == 404
    assert client.get(case_url, headers=other_tenant.headers).status_code == 404
    assert client.get(portal).status_code == 401

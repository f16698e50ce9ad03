"""A notifier killed with SIGKILL in the middle of a batch: after restart every debtor has exactly
one email, none lost, none twice."""

import time
from collections import defaultdict

import httpx

from recupero_devstack.sample import sample_portfolio
from recupero_notifier.settings import NotifierSettings
from tests.e2e.conftest import Stack, StartStack
from tests.e2e.reachable import reachable_now
from tests.e2e.test_walking_skeleton import wait_for

DEBTORS = 600


def emails_by_recipient(stack: Stack, prefix: str) -> dict[str, set[str]]:
    """Distinct Message-IDs each of this test's debtors received."""
    received: dict[str, set[str]] = defaultdict(set)
    for message in stack.smtp.messages():
        for recipient in message["rcpt_tos"]:
            if recipient.startswith(prefix):
                received[recipient].add(message["message_id"])
    return received


def test_killed_notifier_loses_nothing_and_sends_nothing_twice(start_stack: StartStack) -> None:
    stack = start_stack()
    tenant = stack.tenants[0]
    # Debtors the contact policy lets the stack email now (see tests/e2e/reachable.py).
    portfolio = reachable_now(sample_portfolio(DEBTORS, seed=5, id_prefix="K"))
    response = httpx.post(
        f"{stack.url('ingest')}/v1/portfolios?wait=120",
        headers=tenant.headers,
        files={"file": ("cartera.csv", portfolio.encode())},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "completed", response.text

    # Kill as soon as the batch is under way. (The sink may also get mail for other tests'
    # leftover actions on the shared broker: only this test's debtors count.)
    deadline = time.monotonic() + 90
    while len(emails_by_recipient(stack, "k")) < 25:
        assert time.monotonic() < deadline, "notifier never started sending"
        time.sleep(0.02)
    stack.kill("notifier")
    sent_before_crash = len(emails_by_recipient(stack, "k"))
    assert 0 < sent_before_crash < DEBTORS, "the kill must land in the middle of the batch"

    stack.start("notifier")
    stack.wait_ready("notifier")
    wait_for("every debtor's email", lambda: len(emails_by_recipient(stack, "k")) == DEBTORS, 120)
    time.sleep(2)  # anything still in flight would arrive now

    received = emails_by_recipient(stack, "k")
    assert len(received) == DEBTORS
    twice = {recipient: ids for recipient, ids in received.items() if len(ids) != 1}
    assert not twice, f"debtors with more than one distinct email: {twice}"
    # A message the SMTP server accepted just before the kill may be re-submitted with the same
    # Message-ID (the idempotency key); mailboxes collapse it. At most the ones in flight: the
    # notifier carries out a polled batch of actions at once and records their results together.
    in_flight = NotifierSettings.model_fields["consumer_batch_size"].default
    transactions = [m for m in stack.smtp.messages() if m["rcpt_tos"][0].startswith("k")]
    assert len(transactions) <= DEBTORS + in_flight

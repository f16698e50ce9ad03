"""Debtors the contact policy lets the running stack email now, whatever the hour the tests run.

The stack runs on the wall clock and its contact policy is real: a reminder planned at 03:00 in
Mexico City waits for 07:00, nothing goes out on a Mexican Sunday, and a Colombian debtor who
authorised no channel is never emailed. Tests that watch reminders go out therefore place their
debtors where that is allowed right now: under the United States' rules (Regulation F: 08:00-21:00
every day, email uncapped) in the fixed-offset time zone where it is early afternoon. The policy is
not bypassed; the debtors are chosen.
"""

import csv
import io
from datetime import UTC, datetime

from recupero_devstack.sample import afternoon_zone


def reachable_now(portfolio_csv: str, now: datetime | None = None) -> str:
    """The same portfolio with every debtor in the US, in the zone where it is afternoon now."""
    zone = afternoon_zone(now or datetime.now(UTC))
    rows = list(csv.DictReader(io.StringIO(portfolio_csv)))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "country": "US", "time_zone": zone})
    return out.getvalue()

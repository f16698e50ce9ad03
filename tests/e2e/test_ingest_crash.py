"""An import cut off midway (ingest killed with SIGKILL) is resumed by the restarted service from
the stored file: every debtor once, every event once."""

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from recupero_devstack.sample import sample_portfolio
from tests.e2e.conftest import StartStack
from tests.e2e.test_walking_skeleton import wait_for
from tests.kafka_reading import of_tenant, read_topics

DEBTORS = 40_000


def count(database_url: str, query: str, *args: object) -> int:
    url = make_url(database_url)

    async def run() -> int:
        connection = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database
        )
        try:
            return int(await connection.fetchval(query, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def test_a_killed_import_resumes_with_no_duplicate_debts_or_events(start_stack: StartStack) -> None:
    stack = start_stack(services=("ingest",), RECUPERO_IMPORT_STALE_AFTER_SECONDS="3")
    tenant = stack.tenants[0]
    client = httpx.Client(base_url=stack.url("ingest"), headers=tenant.headers, timeout=120)
    content = sample_portfolio(DEBTORS, seed=9, invalid_rows=10, id_prefix="Z").encode()
    submitted = client.post("/v1/portfolios", files={"file": ("big.csv", content)})
    assert submitted.status_code == 202, submitted.text
    import_id = submitted.json()["import_id"]

    # Kill it while it is parsing, once some rows are staged.
    deadline = time.monotonic() + 120
    while (report := client.get(f"/v1/imports/{import_id}").json())["rows_total"] == 0:
        assert report["status"] != "completed", "the import finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed = stack.processes["ingest"].pid
    parsers = Path(f"/proc/{killed}/task/{killed}/children").read_text().split()
    assert parsers, "the file was not being parsed in processes of their own"
    stack.kill("ingest")
    # Its parser processes leave with it instead of waiting forever on a queue no one feeds.
    wait_for(
        "the killed service's parser processes to leave",
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in parsers),
        15,
    )

    stack.start("ingest")
    stack.wait_ready("ingest")
    report = wait_for(
        "the resumed import to complete",
        lambda: (
            (r := client.get(f"/v1/imports/{import_id}").json())["status"]
            in ("completed", "failed")
            and r
        ),
        180,
    )
    assert report["status"] == "completed", report
    assert (report["debtors_new"], report["rows_rejected"]) == (DEBTORS, 10)

    database_url = stack.env["RECUPERO_DATABASE_URL"]
    debtors = count(
        database_url, "SELECT count(*) FROM ingest.debtors WHERE tenant_id = $1", tenant.tenant_id
    )
    wait_for(
        "every event relayed",
        lambda: (
            not count(
                database_url,
                "SELECT count(*) FROM ingest.outbox WHERE tenant_id = $1",
                tenant.tenant_id,
            )
        ),
        60,
    )
    published = of_tenant(
        asyncio.run(read_topics(stack.env["RECUPERO_KAFKA_BOOTSTRAP_SERVERS"], ["debt-imported"]))[
            "debt-imported"
        ],
        tenant.tenant_id,
    )
    events = len(published)
    distinct = len({record.key for record in published})
    assert debtors == events == distinct == DEBTORS

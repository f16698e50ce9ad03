"""An orchestrator killed with SIGKILL while a large batch of actions is due: after restart every
action fires, and none fires twice: one `action-due` event per action id on Kafka.

The outbox relay is at-least-once (docs/architecture.md): killed between Kafka's acknowledgement
and the delete of the sent rows, it sends those rows again after the restart, as the same events
with the same ids, which consumers skip by id. What must never happen is a second *event* for an
action: that would be a second contact."""

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy.engine import make_url

from recupero_devstack.sample import afternoon_zone
from recupero_events import (
    CollectionStage,
    ContactDetails,
    DebtorSegmented,
    Money,
    Topic,
    decode,
    encode,
)
from tests.e2e.conftest import StartStack
from tests.e2e.test_ingest_crash import count
from tests.e2e.test_walking_skeleton import wait_for
from tests.kafka_reading import of_tenant, read_topics

DEBTORS = 800
SEGMENT = "1-30"


def one_email_strategy(due_local: str) -> dict[str, object]:
    return {
        "strategy_id": "one-email",
        "version": 1,
        "name": "One email on entry",
        "segments": [SEGMENT],
        "steps": [
            {
                "step_id": "reminder",
                "timing": {"anchor": "segment_entry", "days": 0, "local_time": due_local},
                "channel": "email",
                "template": "first-reminder",
            }
        ],
    }


def segmented(tenant_id: str, number: int, zone: str, now: datetime) -> DebtorSegmented:
    balance = Money(amount_minor=150_000 + number, currency="USD")
    return DebtorSegmented(
        tenant_id=tenant_id,
        debtor_id=f"K{number:05d}",
        segment=SEGMENT,
        stage=CollectionStage.ADMINISTRATIVE,
        strategy="one-email",
        days_past_due=12,
        balance=balance,
        snapshot_balance=balance,
        snapshot_as_of=now - timedelta(days=1),
        oldest_due_on=date.today() - timedelta(days=12),
        contact=ContactDetails(
            name=f"Debtor {number}",
            email=f"k{number:05d}@example.com",
            country="US",
            time_zone=zone,
            locale="en-US",
        ),
        ruleset_version="rules-1",
        reason=f"rule {SEGMENT!r}",
        evaluated_at=now,
    )


async def produce(bootstrap: str, events: list[DebtorSegmented]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = []
        for payload in events:
            event = encode(payload, source="recupero/test")
            sends.append(
                await producer.send(event.topic, event.value, key=event.key, headers=event.headers)
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def test_killed_orchestrator_loses_no_due_action_and_fires_none_twice(
    start_stack: StartStack,
) -> None:
    # Small scheduler batches: each commits a few dozen actions, so the kill lands between
    # committed batches and inside one that is being fired.
    stack = start_stack(services=("orchestrator",), RECUPERO_SCHEDULER_BATCH_SIZE="40")
    tenant = stack.tenants[0]
    database_url = stack.env["RECUPERO_DATABASE_URL"]
    bootstrap = stack.env["RECUPERO_KAFKA_BOOTSTRAP_SERVERS"]
    now = datetime.now(UTC)
    zone = afternoon_zone(now)
    # Every debtor's step comes due at the same instant, normally once all of them are planned
    # (a loaded machine may still be planning the last ones: they are due as soon as planned).
    due = (now + timedelta(seconds=40)).astimezone(ZoneInfo(zone))
    strategy = one_email_strategy(due.strftime("%H:%M:%S"))
    client = httpx.Client(base_url=stack.url("orchestrator"), headers=tenant.headers, timeout=30)
    url = "/v1/strategies/one-email/versions/1"
    assert client.put(url, json=strategy).status_code == 200
    assert client.post(f"{url}/activate").status_code == 200

    asyncio.run(
        produce(bootstrap, [segmented(tenant.tenant_id, n, zone, now) for n in range(DEBTORS)])
    )

    def actions(status: str) -> int:
        return count(
            database_url,
            "SELECT count(*) FROM orchestrator.scheduled_actions"
            " WHERE tenant_id = $1 AND status = $2",
            tenant.tenant_id,
            status,
        )

    wait_for("the batch to start firing", lambda: actions("fired") >= 80, 180)
    stack.kill("orchestrator")
    fired_before_kill = actions("fired")
    assert fired_before_kill < DEBTORS, "the kill must land in the middle of the batch"

    stack.start("orchestrator")
    stack.wait_ready("orchestrator")
    wait_for("every action fired", lambda: actions("fired") == DEBTORS, 180)
    wait_for(
        "the outbox relayed",
        lambda: (
            not count(
                database_url,
                "SELECT count(*) FROM orchestrator.outbox WHERE tenant_id = $1",
                tenant.tenant_id,
            )
        ),
        60,
    )

    records = of_tenant(
        asyncio.run(read_topics(bootstrap, [Topic.ACTION_DUE.value]))[Topic.ACTION_DUE.value],
        tenant.tenant_id,
    )
    events_of: dict[str, list[str]] = defaultdict(list)
    for record in records:
        headers = dict(record.headers)
        payload = decode(record.topic, record.value, list(record.headers)).payload
        events_of[str(payload.action_id)].append(headers["ce_id"].decode())  # type: ignore[attr-defined]
    fired_ids = set(asyncio.run(fired_action_ids(database_url, tenant.tenant_id)))
    assert len(fired_ids) == DEBTORS
    assert set(events_of) == fired_ids, "an action fired without its action-due, or vice versa"
    twice = {action: set(ids) for action, ids in events_of.items() if len(set(ids)) != 1}
    assert not twice, f"actions with more than one action-due event: {twice}"
    assert actions("pending") == 0
    # Each debtor was contacted once, as the contact history the caps count says.
    assert (
        count(
            database_url,
            "SELECT count(DISTINCT action_id) FROM orchestrator.contact_history"
            " WHERE tenant_id = $1",
            tenant.tenant_id,
        )
        == count(
            database_url,
            "SELECT count(*) FROM orchestrator.contact_history WHERE tenant_id = $1",
            tenant.tenant_id,
        )
        == DEBTORS
    )


async def fired_action_ids(database_url: str, tenant_id: str) -> list[str]:
    url = make_url(database_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        rows = await connection.fetch(
            "SELECT action_id::text FROM orchestrator.scheduled_actions"
            " WHERE tenant_id = $1 AND status = 'fired'",
            tenant_id,
        )
        return [row["action_id"] for row in rows]
    finally:
        await connection.close()

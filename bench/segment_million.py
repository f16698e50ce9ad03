"""Segmenter benchmark: re-segmenting 1,000,000 debtors with a 15-segment rule set, from the
activation request to every changed `debtor-segmented` event on Kafka, against a bare SQL
`UPDATE ... CASE` assigning the same buckets in the same run; the what-if preview; and a burst of
payments consumed by one segmenter process, then by two in one consumer group.

    uv run python bench/segment_million.py [--debtors 1000000] [--burst 20000]

- Debtors are seeded with COPY straight into the segmenter's tables (facts and placements), placed
  by the default rule set (as if each had been imported), with random products, balances,
  currencies, time zones and promise/payment history.
- Preview: `POST /v1/rulesets/preview` with the 15-segment document.
- Activation: `PUT /v1/rulesets` then `POST /v1/rulesets/v1/activate`; the clock stops when the
  `debtor-segmented` topic's end offsets say every changed debtor's event is on Kafka. The CPU
  time the segmenter process (API and outbox relay) and PostgreSQL used meanwhile is printed too:
  on a shared machine it tells the work apart from the waiting.
  `RECUPERO_ACTIVATION_CONNECTIONS` in the environment sets the chunks run at once.
- Baseline: one `UPDATE` of a plain copy of the facts with each debtor's segment beside them, with
  a hand-written `CASE` of the same 15 rules.
- Burst: `payment-received` events for distinct debtors produced to Kafka, then consumed by one
  segmenter process (then two processes in one group, on a fresh burst); the clock stops when the
  inbox holds every event. `--burst 0` skips it.

Prints every figure and the ratios; the numbers go to bench/RESULTS.md by hand.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import yaml
from aiokafka import AIOKafkaProducer
from harness import (
    cpu_seconds,
    events_on_kafka,
    load_average,
    postgres_cpu_seconds,
    start_service,
    stop,
)

from recupero_devstack._util import free_port
from recupero_devstack.kafka import KafkaBroker
from recupero_devstack.postgres import PostgresServer
from recupero_events import Money, PaymentReceived, encode
from recupero_runtime.auth import hash_api_key
from recupero_segmenter.domain.defaults import AGING_BY_AMOUNT_DOCUMENT, LARGE_BALANCE

REPO = Path(__file__).resolve().parents[1]
TENANT = "bench-bank"
KEY = "bench-key"
TODAY = datetime.now(UTC).date()
COUNTRIES = [
    ("MX", "America/Mexico_City", "MXN", 100),
    ("CO", "America/Bogota", "COP", 10_000),
    ("PE", "America/Lima", "PEN", 100),
    ("AR", "America/Argentina/Buenos_Aires", "ARS", 1_000),
]
DEFAULT_PLACES = [  # (upper bound of days past due, segment, stage, strategy)
    (0, "pre-mora", "preventive", "preventive"),
    (30, "1-30", "administrative", "early"),
    (60, "31-60", "administrative", "negotiation"),
    (90, "61-90", "administrative", "negotiation"),
    (180, "91-180", "extrajudicial", "extrajudicial"),
    (10**9, "180+", "judicial", "judicial"),
]
COLUMNS = [
    "tenant_id",
    "debtor_id",
    "contact",
    "snapshot_balance_minor",
    "currency",
    "snapshot_as_of",
    "oldest_due_on",
    "balance_minor",
    "time_zone",
    "country",
    "product",
    "zone",
    "documents_count",
    "promises_made",
    "last_promise_on",
    "payments_count",
    "last_payment_on",
]
PLACEMENT_COLUMNS = [
    "tenant_id",
    "debtor_id",
    "segment",
    "stage",
    "strategy",
    "days_past_due",
    "ruleset_version",
    "segmented_at",
]


def debtor_rows(count: int, seed: int = 7) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Each debtor's facts, and where the default rule set placed it."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows, placed = [], []
    for n in range(1, count + 1):
        country, zone, currency, scale = COUNTRIES[n % len(COUNTRIES)]
        days = rng.randint(-20, 400)
        balance = 0 if rng.random() < 0.03 else rng.randint(10, 9_000) * scale
        if balance <= 0:
            segment, stage, strategy = "settled", "settled", None
        else:
            segment, stage, strategy = next(p[1:] for p in DEFAULT_PLACES if days <= p[0])
        promised = rng.random() < 0.05
        contact = json.dumps({"name": f"Cliente {n}", "country": country, "time_zone": zone})
        debtor_id = f"B{n:07d}"
        placed.append((TENANT, debtor_id, segment, stage, strategy, days, "default-1", now))
        rows.append(
            (
                TENANT,
                debtor_id,
                contact,
                balance,
                currency,
                now - timedelta(days=1),
                TODAY - timedelta(days=days),
                balance,
                zone,
                country,
                rng.choice(["loan", "card", "service"]),
                rng.choice(["Norte", "Sur", "Centro"]),
                rng.randint(1, 5),
                1 if promised else 0,
                TODAY - timedelta(days=rng.randint(0, 14)) if promised else None,
                0,
                None,
            )
        )
    return rows, placed


async def seed(dsn: str, count: int) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        # COPY is binary: jsonb's binary form is a version byte and the JSON text.
        await connection.set_type_codec(
            "jsonb",
            encoder=lambda v: b"\x01" + v.encode(),
            decoder=lambda v: json.loads(v[1:]),
            schema="pg_catalog",
            format="binary",
        )
        rows, placed = debtor_rows(count)
        started = time.perf_counter()
        await connection.copy_records_to_table(
            "debtors", schema_name="segmenter", records=rows, columns=COLUMNS
        )
        await connection.copy_records_to_table(
            "placements", schema_name="segmenter", records=placed, columns=PLACEMENT_COLUMNS
        )
        await connection.execute(
            "INSERT INTO segmenter.aging_clock SELECT DISTINCT tenant_id, time_zone, "
            "CURRENT_DATE + 1 FROM segmenter.debtors ON CONFLICT DO NOTHING"
        )
        await connection.execute("VACUUM ANALYZE segmenter.debtors")
        await connection.execute("VACUUM ANALYZE segmenter.placements")
        return time.perf_counter() - started
    finally:
        await connection.close()


def bare_case_sql() -> str:
    """The same 15 rules as AGING_BY_AMOUNT_DOCUMENT, written by hand."""
    large = " OR ".join(
        f"(currency = '{currency}' AND balance_minor >= {amount})"
        for currency, amount in LARGE_BALANCE.items()
    )
    small = " OR ".join(
        f"(currency = '{currency}' AND balance_minor < {amount})"
        for currency, amount in LARGE_BALANCE.items()
    )
    dpd = "((now() AT TIME ZONE time_zone)::date - oldest_due_on)"
    since_promise = "((now() AT TIME ZONE time_zone)::date - last_promise_on)"
    whens = [
        "WHEN balance_minor <= 0 THEN 'settled'",
        "WHEN custom->>'written_off' IN ('true','yes','si','sí','1') THEN 'written-off'",
        f"WHEN {since_promise} <= 7 AND promises_broken = 0 THEN 'promised'",
    ]
    for name, low, high in [
        ("pre-mora", None, 0),
        ("1-30", 1, 30),
        ("31-60", 31, 60),
        ("61-90", 61, 90),
        ("91-180", 91, 180),
        ("180+", 181, None),
    ]:
        aging = " AND ".join(
            part
            for part in (
                f"{dpd} >= {low}" if low is not None else "",
                f"{dpd} <= {high}" if high is not None else "",
            )
            if part
        )
        whens.append(f"WHEN {aging} AND ({large}) THEN '{name}-large'")
        whens.append(f"WHEN {aging} AND ({small}) THEN '{name}-small'")
    return "UPDATE bare SET segment = CASE " + " ".join(whens) + " ELSE 'other-currency' END"


async def baseline_update(dsn: str) -> tuple[float, int]:
    connection = await asyncpg.connect(dsn)
    try:
        # The facts with the segment beside them, in one plain table (no index, no history, no
        # events), as the segmenter kept them before placements had a table of their own.
        await connection.execute(
            "CREATE TABLE bare AS SELECT d.*, p.segment FROM segmenter.debtors d "
            "JOIN segmenter.placements p USING (tenant_id, debtor_id)"
        )
        await connection.execute("VACUUM ANALYZE bare")
        started = time.perf_counter()
        status = await connection.execute(bare_case_sql())
        elapsed = time.perf_counter() - started
        return elapsed, int(status.split()[-1])
    finally:
        await connection.close()


async def scalar(dsn: str, sql: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval(sql))
    finally:
        await connection.close()


async def start_segmenter(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    return await start_service("recupero_segmenter", env, port)


async def burst(bootstrap: str, debtor_ids: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        sends = []
        for debtor_id in debtor_ids:
            event = encode(
                PaymentReceived(
                    tenant_id=TENANT,
                    debtor_id=debtor_id,
                    payment_id=uuid4(),
                    amount=Money(amount_minor=100, currency="MXN"),
                    method="bank_transfer",
                    received_at=datetime.now(UTC),
                ),
                source="recupero/bench",
            )
            sends.append(
                await producer.send(
                    "payment-received", event.value, key=event.key, headers=event.headers
                )
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def consume_burst(
    env: dict[str, str], dsn: str, bootstrap: str, debtor_ids: list[str], processes: int
) -> float:
    """Time from producing the burst to the last event applied by `processes` segmenters that
    are already running in one consumer group."""
    running = [await start_segmenter(env, free_port()) for _ in range(processes)]
    try:
        await asyncio.sleep(8)  # let the group settle its partitions before the burst
        before = await scalar(dsn, "SELECT count(*) FROM segmenter.processed_events")
        started = time.perf_counter()
        await burst(bootstrap, debtor_ids)
        while await scalar(dsn, "SELECT count(*) FROM segmenter.processed_events") < before + len(
            debtor_ids
        ):
            await asyncio.sleep(0.2)
        return time.perf_counter() - started
    finally:
        for process in running:
            await stop(process)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--debtors", type=int, default=1_000_000)
    parser.add_argument("--burst", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recupero-bench-seg-"))
    postgres = PostgresServer(work / "pg", free_port(), fast=False)
    kafka = KafkaBroker(work / "kafka", free_port(), free_port(), REPO / ".cache")
    postgres.start()
    kafka.start()
    segmenter = None
    try:
        postgres.ensure_database("bench")
        dsn = postgres.dsn_for("bench")
        port = free_port()
        env = {
            **os.environ,
            "RECUPERO_DATABASE_URL": postgres.url_for("bench"),
            "RECUPERO_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "RECUPERO_API_KEYS": json.dumps({hash_api_key(KEY): TENANT}),
            "RECUPERO_LOG_LEVEL": "WARNING",
            # The sweep must not run during the measurement (seeded as swept through tomorrow).
            "RECUPERO_AGING_INTERVAL_SECONDS": "3600",
        }
        segmenter = await start_segmenter(env, port)  # runs the migrations
        seeded = await seed(dsn, args.debtors)
        print(f"seeded {args.debtors:,} debtors with COPY in {seeded:.1f} s")
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {KEY}"}
        document = yaml.safe_dump(AGING_BY_AMOUNT_DOCUMENT, allow_unicode=True)
        async with httpx.AsyncClient(timeout=900, headers=headers) as client:
            started = time.perf_counter()
            preview = (await client.post(f"{url}/v1/rulesets/preview", content=document)).json()
            preview_s = time.perf_counter() - started
            print(
                f"preview: {preview_s:.2f} s for {preview['debtors']:,} debtors "
                f"({preview['debtors'] / preview_s:,.0f} rows/s)"
            )
            uploaded = await client.put(f"{url}/v1/rulesets", content=document)
            assert uploaded.status_code == 201, uploaded.text
            topic = "debtor-segmented"
            before = await asyncio.to_thread(events_on_kafka, kafka.bootstrap, topic)
            postmaster = int((postgres.pgdata / "postmaster.pid").read_text().split()[0])
            cpu_before = cpu_seconds(segmenter.pid), postgres_cpu_seconds(postmaster)
            started = time.perf_counter()
            report = (await client.post(f"{url}/v1/rulesets/v1/activate")).json()
            committed = time.perf_counter() - started
            # The clock stops when the last changed debtor's event is on Kafka.
            while (
                events := await asyncio.to_thread(events_on_kafka, kafka.bootstrap, topic) - before
            ) < report["changed"]:
                await asyncio.sleep(0.1)
            activation_s = time.perf_counter() - started
            cpu_after = cpu_seconds(segmenter.pid), postgres_cpu_seconds(postmaster)
        print(
            f"activation: {activation_s:.2f} s to the last event on Kafka "
            f"({report['evaluated'] / activation_s:,.0f} rows/s); all chunks committed after "
            f"{committed:.2f} s; evaluated {report['evaluated']:,}, changed {report['changed']:,}, "
            f"events {events:,}"
        )
        print(
            f"  CPU during activation: segmenter process (API, relay) "
            f"{cpu_after[0] - cpu_before[0]:.1f} s, PostgreSQL {cpu_after[1] - cpu_before[1]:.1f} s"
        )
        await stop(segmenter)
        segmenter = None

        bare_s, bare_rows = await baseline_update(dsn)
        print(f"baseline bare UPDATE ... CASE: {bare_s:.2f} s for {bare_rows:,} rows")
        print(f"ratio activation (to Kafka) / bare UPDATE: {activation_s / bare_s:.1f}x")
        print(f"ratio activation (committed) / bare UPDATE: {committed / bare_s:.1f}x")
        print(f"ratio preview / bare UPDATE: {preview_s / bare_s:.2f}x")

        print(f"load average (1, 5, 15 min): {load_average()}")
        if not args.burst:
            return
        ids = [f"B{n:07d}" for n in range(1, args.burst * 2 + 1)]
        one = await consume_burst(env, dsn, kafka.bootstrap, ids[: args.burst], 1)
        print(
            f"burst of {args.burst:,} payments, one process: {one:.1f} s ({args.burst / one:,.0f}/s)"
        )
        two = await consume_burst(env, dsn, kafka.bootstrap, ids[args.burst :], 2)
        print(
            f"burst of {args.burst:,} payments, two processes: {two:.1f} s ({args.burst / two:,.0f}/s)"
        )
    finally:
        if segmenter is not None:
            await stop(segmenter)
        kafka.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)  # a million-debtor run leaves gigabytes


if __name__ == "__main__":
    asyncio.run(main())

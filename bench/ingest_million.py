"""Ingest benchmark: 1,000,000 document rows from CSV to committed PostgreSQL rows and
`debt-imported` events on Kafka, against two baselines measured in the same run.

    uv run python bench/ingest_million.py [--rows 1000000]

- Baseline 1: PostgreSQL COPY of the same file into a bare table of text columns.
- Baseline 2: producing as many messages as ingest emits, of the same size, with aiokafka alone.
- Ingest: the real service (a separate process) takes the upload over HTTP, parses, validates,
  stages with COPY, consolidates in SQL and relays the events; the clock stops when the topic's
  end offsets say the last event is on Kafka. Peak RSS of the ingest process is read from /proc.
  CPU-seconds of the ingest process, its parser processes and PostgreSQL are printed with it,
  and the load average (the machine is shared: wall times move with it, CPU-seconds less).
- Re-import: the same file again; it must emit no event.
- Next day: the same portfolio with 1% of debtors owing a new amount (compared debtor by
  debtor); only those emit.

Prints every figure and the ratios; the numbers go to bench/RESULTS.md by hand.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from harness import (
    cpu_seconds,
    events_on_kafka,
    load_average,
    postgres_cpu_seconds,
    processes_with,
)

from recupero_devstack._util import free_port
from recupero_devstack.kafka import KafkaBroker
from recupero_devstack.postgres import PostgresServer
from recupero_runtime.auth import hash_api_key

REPO = Path(__file__).resolve().parents[1]
# The average `debt-imported` payload of this portfolio (3.4 documents a debtor), measured: the
# produce baseline sends messages of the same size.
EVENT_BYTES = 1_660
HEADER = (
    "debtor_id,name,email,phone,country,time_zone,locale,document_id,document_type,product,"
    "issued_on,due_on,amount,currency\n"
)
COUNTRIES = [
    ("MX", "America/Mexico_City", "es-MX", "MXN", "+52155"),
    ("CO", "America/Bogota", "es-CO", "COP", "+57300"),
    ("PE", "America/Lima", "es-PE", "PEN", "+51987"),
    ("AR", "America/Argentina/Buenos_Aires", "es-AR", "ARS", "+54911"),
]


def write_portfolio(path: Path, rows: int, seed: int = 42) -> tuple[int, int]:
    """About `rows` rows over rows/3.33 debtors; 5% credit notes, 2% invalid rows.
    Returns (rows written, debtors)."""
    rng = random.Random(seed)
    today = date(2026, 11, 22)
    written = debtors = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        while written < rows:
            debtors += 1
            country, zone, locale, currency, prefix = COUNTRIES[debtors % len(COUNTRIES)]
            debtor = f"B{debtors:07d}"
            contact = (
                f"{debtor},Cliente {debtors},{debtor.lower()}@clientes.example.com,"
                f"{prefix}{rng.randrange(10**6, 10**7)},{country},{zone},{locale}"
            )
            due = today - timedelta(days=rng.randint(-20, 400))
            for doc in range(rng.choice((2, 3, 3, 4, 5))):
                roll = rng.random()
                kind = "credit_note" if roll < 0.05 else "installment"
                amount = f"{rng.randint(10, 9000)}.{rng.randrange(100):02d}"
                due_on = (due + timedelta(days=30 * doc)).isoformat()
                if roll > 0.98:  # an invalid row: an impossible date
                    due_on = "2026-02-31"
                out.write(
                    f"{contact},{debtor}-{doc},{kind},loan,{due.isoformat()},{due_on},"
                    f"{amount},{currency}\n"
                )
                written += 1
    return written, debtors


def daily_snapshot(source: Path, target: Path, every: int = 100) -> int:
    """The same portfolio a day later: the first document of every `every`th debtor owes a new
    amount. Returns how many debtors changed (a change on an invalid row changes nothing)."""
    changed = debtors = 0
    last = ""
    with source.open(encoding="utf-8") as rows, target.open("w", encoding="utf-8") as out:
        out.write(rows.readline())
        for line in rows:
            debtor = line[: line.index(",")]
            if debtor != last:
                last = debtor
                debtors += 1
                cells = line.split(",")
                if debtors % every == 0 and cells[11] != "2026-02-31":
                    cells[12] = "1.00"
                    line = ",".join(cells)
                    changed += 1
            out.write(line)
    return changed


async def explain_slow_statements(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for setting, value in (
            ("session_preload_libraries", "auto_explain"),
            ("auto_explain.log_min_duration", "300ms"),
            ("auto_explain.log_analyze", "on"),
            ("auto_explain.log_timing", "on"),
            ("auto_explain.log_nested_statements", "on"),
        ):
            await connection.execute(f"ALTER DATABASE bench SET {setting} = '{value}'")
    finally:
        await connection.close()


async def baseline_copy(dsn: str, path: Path) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        columns = HEADER.strip().split(",")
        await connection.execute(
            "CREATE TABLE bare_copy (" + ", ".join(f"{c} text" for c in columns) + ")"
        )
        started = time.perf_counter()
        with path.open("rb") as source:
            await connection.copy_to_table("bare_copy", source=source, format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await connection.close()


async def baseline_produce(bootstrap: str, messages: int, size: int) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    value = b"x" * size
    try:
        started = time.perf_counter()
        futures = [
            await producer.send("bench-baseline", value=value, key=f"bench:{n}".encode())
            for n in range(messages)
        ]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    """The ingest process's parser processes (they live as long as it does)."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    # multiprocessing's resource tracker is a child too; it parses nothing.
    return [
        int(child)
        for child in found
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def cpu_now(ingest: int, postmaster: int, kafka: list[int]) -> tuple[float, float, float, float]:
    """CPU-seconds so far: the ingest process, its parser processes, PostgreSQL's backends, the
    Kafka broker."""
    # `postgres_cpu_seconds` sums the live children of any parent pid.
    return (
        cpu_seconds(ingest),
        postgres_cpu_seconds(ingest),
        postgres_cpu_seconds(postmaster),
        sum(cpu_seconds(pid) for pid in kafka),
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--parse-processes",
        type=int,
        default=2,
        help="the service's RECUPERO_PARSE_PROCESSES (0: one thread parses, as before)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=2,
        help="the service's RECUPERO_CONSOLIDATION_PARTITIONS (1: one transaction, as before)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the files and data dirs")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="log the plan (EXPLAIN ANALYZE) of every statement over 300 ms to the benchmark's "
        "postgres.log (with --keep, to read it afterwards)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recupero-bench-"))
    csv_path = work / "portfolio.csv"
    rows, debtors = write_portfolio(csv_path, args.rows)
    print(f"file: {rows:,} rows, {debtors:,} debtors, {csv_path.stat().st_size / 1e6:.1f} MB")

    postgres = PostgresServer(work / "pg", free_port(), fast=False)
    kafka = KafkaBroker(work / "kafka", free_port(), free_port(), REPO / ".cache")
    postgres.start()
    kafka.start()
    ingest = None
    try:
        postgres.ensure_database("bench")
        if args.explain:
            await explain_slow_statements(postgres.dsn_for("bench"))
        copy_s = await baseline_copy(postgres.dsn_for("bench"), csv_path)
        print(f"baseline COPY into a bare table: {copy_s:.2f} s ({rows / copy_s:,.0f} rows/s)")

        key = "bench-key"
        port = free_port()
        env = {
            **os.environ,
            "RECUPERO_DATABASE_URL": postgres.url_for("bench"),
            "RECUPERO_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "RECUPERO_API_KEYS": json.dumps({hash_api_key(key): "bench-bank"}),
            "RECUPERO_HTTP_PORT": str(port),
            "RECUPERO_LOG_LEVEL": "INFO",
            "RECUPERO_PARSE_PROCESSES": str(args.parse_processes),
            "RECUPERO_CONSOLIDATION_PARTITIONS": str(args.partitions),
        }
        ingest = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recupero_ingest", env=env
        )
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=600) as client:
            while True:
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
            headers = {"Authorization": f"Bearer {key}"}

            async def run_import(path: Path) -> tuple[float, dict[str, Any], int]:
                before = await asyncio.to_thread(events_on_kafka, kafka.bootstrap, "debt-imported")
                started = time.perf_counter()
                started_at = datetime.now(UTC)
                with path.open("rb") as source:
                    response = await client.post(
                        f"{url}/v1/portfolios?wait=600",
                        headers=headers,
                        files={"file": ("portfolio.csv", source, "text/csv")},
                    )
                report = response.json()
                assert report["status"] == "completed", report
                expected = (
                    report["debtors_new"] + report["debtors_changed"] + report["debtors_settled"]
                )
                # The clock stops when the last event is on Kafka.
                while (
                    await asyncio.to_thread(events_on_kafka, kafka.bootstrap, "debt-imported")
                    < before + expected
                ):
                    await asyncio.sleep(0.1)
                # To read the phases off the service's log (`import_staged`, each
                # `import_partition_committed`): the same clock.
                print(
                    f"  upload started {started_at:%H:%M:%S.%f}, last event on Kafka "
                    f"{datetime.now(UTC):%H:%M:%S.%f} UTC"
                )
                return time.perf_counter() - started, report, expected

            postmaster = int((postgres.pgdata / "postmaster.pid").read_text().split()[0])
            broker = processes_with(str(work / "kafka"))
            load_before, cpu_before = load_average(), cpu_now(ingest.pid, postmaster, broker)
            elapsed, report, events = await run_import(csv_path)
            cpu = [
                after - before
                for after, before in zip(
                    cpu_now(ingest.pid, postmaster, broker), cpu_before, strict=True
                )
            ]
            rss = peak_rss_mb(ingest.pid)
            parsers = children(ingest.pid)
            rss_children = sum(peak_rss_mb(pid) for pid in parsers)
            print(
                f"ingest: {elapsed:.2f} s for {rows:,} rows ({rows / elapsed:,.0f} rows/s), "
                f"{events:,} debt-imported events on Kafka, peak RSS {rss:.0f} MB "
                f"+ {rss_children:.0f} MB in {len(parsers)} parser processes"
            )
            print(
                f"  CPU-seconds: ingest process {cpu[0]:.1f}, parser processes {cpu[1]:.1f}, "
                f"PostgreSQL backends {cpu[2]:.1f}, Kafka broker {cpu[3]:.1f}; load average "
                f"{load_before} -> {load_average()}"
            )
            # However well the work is spread, two cores cannot do it in less.
            print(
                f"  all of it: {sum(cpu):.1f} CPU-seconds, at least {sum(cpu) / 2:.1f} s of "
                "wall time on 2 idle cores"
            )
            print(
                f"  accepted {report['rows_accepted']:,}, rejected {report['rows_rejected']:,}, "
                f"debtors new {report['debtors_new']:,}"
            )
            produce_s = await baseline_produce(kafka.bootstrap, events, EVENT_BYTES)
            print(f"baseline aiokafka produce of {events:,} messages: {produce_s:.2f} s")

            again, report2, events2 = await run_import(csv_path)
            print(
                f"re-import of the unchanged file: {again:.2f} s, events {events2}, "
                f"unchanged debtors {report2['debtors_unchanged']:,}, "
                f"same file as {report2['same_file_as']}"
            )
            daily_path = work / "portfolio-next-day.csv"
            changed = daily_snapshot(csv_path, daily_path)
            daily, report3, events3 = await run_import(daily_path)
            print(
                f"next day's snapshot ({changed:,} debtors changed, compared debtor by debtor): "
                f"{daily:.2f} s, events {events3:,}, changed {report3['debtors_changed']:,}, "
                f"unchanged {report3['debtors_unchanged']:,}"
            )
        print()
        print(f"ratio ingest / COPY:             {elapsed / copy_s:.1f}x")
        print(f"ratio ingest / aiokafka produce: {elapsed / produce_s:.1f}x")
        print(f"ratio ingest / (COPY + produce): {elapsed / (copy_s + produce_s):.1f}x")
    finally:
        if ingest is not None:
            ingest.send_signal(signal.SIGTERM)
            await asyncio.wait_for(ingest.wait(), 60)
        kafka.stop()
        postgres.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

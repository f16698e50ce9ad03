"""Orchestrator benchmark: planning the day for 1,000,000 debtors on a strategy, against a bare
`INSERT ... SELECT` of the same schedule rows in the same run; firing a batch that comes due at once;
and the time from a full `payment-received` to the debtor's pending actions being cancelled while
that batch fires.

    uv run python bench/orchestrator_million.py [--debtors 1000000] [--fire 20000] [--payments 300]
        [--plan-processes 2] [--plan-parts 8] [--plan-chunk 10000] [--plan-only]
        [--firing-processes 2] [--one-process]

- Debtors are seeded with COPY straight into the orchestrator's tables: open cases on a three-step
  strategy with fallback and repeat, entered into their segment over the last ten days, half of
  them with the first step already sent and delivered (and counted in their contact history), in
  MX, CO, PE, AR and US (the US ones in a zone where it is afternoon now, so they may be
  contacted whatever the hour of the run).
- Plan the day: `day_plan.plan_day` (the service's code, in this process and `--plan-processes`
  minus one more it starts, over `--plan-parts` key ranges) reads each chunk of cases, runs the
  planner and the contact policy, and writes the schedule. CPU of the planning processes and of
  PostgreSQL meanwhile is printed. Baseline: `INSERT INTO bare SELECT` of exactly the rows it
  wrote into a plain copy of the table (no index).
- Fire: every pending action is first put off by 30 days (so the schedulers find nothing due
  before the clock starts), then `--fire` US debtors' first steps are made due at once (one
  UPDATE) while the orchestrator runs as in production (`python -m recupero_orchestrator`: one
  process with the consumers and `--firing-processes` with the scheduler, sharing the batch
  through SKIP LOCKED, or all in one with `--one-process`); the clock stops when no action of the
  batch is pending and the outbox is empty, i.e. the last `action-due` is on Kafka. CPU seconds
  are printed per orchestrator process, for PostgreSQL and for the Kafka broker.
- Cancel latency: while the batch fires, `--payments` debtors (with nothing due within the hour,
  so in no batch) pay in full, a few dozen a second (after one warm-up payment, so the consumer has joined its group); each
  payment's produce time is taken when Kafka acknowledges it, and the cancellation when a poll
  (every 20 ms) first sees the debtor with no pending action.

Prints every figure, the ratios, the load average and CPU seconds; the numbers go to
bench/RESULTS.md by hand.
"""

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import confluent_kafka
from aiokafka import AIOKafkaProducer
from harness import (
    cpu_seconds,
    events_on_kafka,
    load_average,
    postgres_cpu_seconds,
    processes_with,
    start_service,
    stop,
)

from recupero_devstack._util import free_port
from recupero_devstack.kafka import KafkaBroker
from recupero_devstack.postgres import PostgresServer
from recupero_devstack.sample import afternoon_zone
from recupero_events import Money, PaymentReceived, cloudevent_headers, encode
from recupero_orchestrator.bootstrap import bootstrap
from recupero_orchestrator.day_plan import plan_day
from recupero_orchestrator.domain.strategies import parse_strategy
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.kafka import OutgoingMessage, Publisher, ensure_topics

REPO = Path(__file__).resolve().parents[1]
TENANT = "bench-bank"
STRATEGY = parse_strategy(
    {
        "strategy_id": "early",
        "version": 1,
        "name": "Early arrears",
        "segments": ["1-30"],
        "steps": [
            {
                "step_id": "whatsapp",
                "timing": {"anchor": "segment_entry", "days": 0, "local_time": "10:00"},
                "channel": "whatsapp",
                "template": "first-reminder",
                "fallback": {"channels": ["sms"], "within_hours": 24},
            },
            {
                "step_id": "email",
                "timing": {"anchor": "previous_step", "days": 3},
                "channel": "email",
                "template": "second-reminder",
                "when": [{"kind": "no_open_promise"}],
            },
            {
                "step_id": "sms",
                "timing": {"anchor": "previous_step", "days": 4},
                "channel": "sms",
                "template": "second-reminder",
            },
        ],
        "repeat": {"from_step": "whatsapp", "every_days": 14, "max_rounds": 3},
    }
)


def action_due_messages(bootstrap: str, limit: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of the first `limit` messages on `action-due`."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-bare", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe(["action-due"])
    found: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 60
    try:
        while len(found) < limit and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            key, value = message.key(), message.value()
            if key is not None and value is not None:
                found.append((key, value))
    finally:
        consumer.close()
    return found


def seed_rows(count: int, now: datetime) -> tuple[list[tuple[Any, ...]], ...]:
    """Cases, the first step's record for half of them, and their contact history."""
    rng = random.Random(5)
    countries = [
        ("MX", "America/Mexico_City", "MXN"),
        ("CO", "America/Bogota", "COP"),
        ("PE", "America/Lima", "PEN"),
        ("AR", "America/Argentina/Buenos_Aires", "ARS"),
        ("US", afternoon_zone(now), "USD"),
    ]
    cases, actions, contacts = [], [], []
    for n in range(count):
        country, zone, currency = countries[n % len(countries)]
        debtor_id = f"D{n:07d}"
        entered = (now - timedelta(seconds=rng.randint(3600, 10 * 86_400))).replace(microsecond=0)
        balance = rng.randint(50, 9_000) * 100
        contact = json.dumps(
            {
                "name": f"Cliente {n}",
                "email": f"d{n}@example.com",
                "phone": f"+52155{n:07d}",
                "country": country,
                "time_zone": zone,
            }
        )
        days = rng.randint(1, 30)
        cases.append(
            (TENANT, debtor_id, contact, "1-30", "administrative", days,
             (now - timedelta(days=days)).date(), balance, currency, now - timedelta(days=1),
             "open", "early", 1, entered, "active", "following the strategy", now)
        )  # fmt: skip
        if n % 2:
            sent = entered + timedelta(minutes=rng.randint(1, 600))
            prefix = f"{STRATEGY.reference}/{entered.astimezone(UTC):%Y%m%dT%H%M%SZ}"
            action_id = uuid4()
            actions.append(
                (action_id, TENANT, debtor_id, f"{prefix}/whatsapp/0/0", "contact",
                 "early@1/whatsapp", "whatsapp", 0, 0, "whatsapp", "first-reminder", sent,
                 entered, "fired", sent, sent, "delivered")
            )  # fmt: skip
            contacts.append((uuid4(), TENANT, debtor_id, "whatsapp", sent, False, action_id))
    return cases, actions, contacts


CASE_COLUMNS = [
    "tenant_id", "debtor_id", "contact", "segment", "stage", "days_past_due", "oldest_due_on",
    "snapshot_balance_minor", "currency", "snapshot_as_of", "status", "strategy_id",
    "strategy_version", "segment_entered_at", "plan_status", "plan_reason", "opened_at",
]  # fmt: skip
ACTION_COLUMNS = [
    "action_id", "tenant_id", "debtor_id", "action_key", "kind", "strategy", "step_id", "round",
    "attempt", "channel", "template", "due_at", "planned_at", "status", "fired_at",
    "happened_at", "delivery",
]  # fmt: skip
CONTACT_COLUMNS = [
    "contact_id", "tenant_id", "debtor_id", "channel", "contacted_at", "conversation", "action_id",
]  # fmt: skip


async def seed(dsn: str, count: int, now: datetime) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.set_type_codec(
            "jsonb",
            encoder=lambda v: b"\x01" + v.encode(),
            decoder=lambda v: json.loads(v[1:]),
            schema="pg_catalog",
            format="binary",
        )
        cases, actions, contacts = seed_rows(count, now)
        started = time.perf_counter()
        await connection.execute(
            "INSERT INTO orchestrator.strategy_versions (tenant_id, strategy_id, version,"
            " document, status, activated_at) VALUES ($1, 'early', 1, $2, 'active', now())",
            TENANT,
            STRATEGY.model_dump_json(),
        )
        for table, rows, columns in (
            ("cases", cases, CASE_COLUMNS),
            ("scheduled_actions", actions, ACTION_COLUMNS),
            ("contact_history", contacts, CONTACT_COLUMNS),
        ):
            await connection.copy_records_to_table(
                table, schema_name="orchestrator", records=rows, columns=columns
            )
            await connection.execute(f"VACUUM ANALYZE orchestrator.{table}")
        return time.perf_counter() - started
    finally:
        await connection.close()


async def bare_insert_select(dsn: str, planned_at: datetime) -> tuple[float, int]:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "CREATE TABLE bare_schedule (LIKE orchestrator.scheduled_actions INCLUDING DEFAULTS)"
        )
        started = time.perf_counter()
        status = await connection.execute(
            "INSERT INTO bare_schedule SELECT * FROM orchestrator.scheduled_actions"
            " WHERE planned_at = $1",
            planned_at,
        )
        return time.perf_counter() - started, int(status.split()[-1])
    finally:
        await connection.close()


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def pay_in_full(
    bootstrap: str, dsn: str, debtors: list[tuple[str, int, str]], per_second: float
) -> list[float]:
    """Full payments a few a second; returns each debtor's seconds from the payment on Kafka to
    its pending actions seen cancelled."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    produced: dict[str, float] = {}
    seen: dict[str, float] = {}
    connection = await asyncpg.connect(dsn)

    async def watch() -> None:
        while len(seen) < len(debtors):
            waiting = [d for d in produced if d not in seen]
            if waiting:
                rows = await connection.fetch(
                    "SELECT DISTINCT debtor_id FROM orchestrator.scheduled_actions"
                    " WHERE tenant_id = $1 AND debtor_id = ANY($2) AND status = 'pending'",
                    TENANT,
                    waiting,
                )
                now = time.perf_counter()
                still = {row["debtor_id"] for row in rows}
                seen.update({d: now for d in waiting if d not in still})
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        for debtor_id, amount, currency in debtors:
            event = encode(
                PaymentReceived(
                    tenant_id=TENANT,
                    debtor_id=debtor_id,
                    payment_id=uuid4(),
                    amount=Money(amount_minor=amount, currency=currency),
                    method="bank_transfer",
                    received_at=datetime.now(UTC),
                ),
                source="recupero/bench",
            )
            await producer.send_and_wait(
                "payment-received", event.value, key=event.key, headers=event.headers
            )
            produced[debtor_id] = time.perf_counter()
            await asyncio.sleep(1 / per_second)
        await asyncio.wait_for(watcher, 300)
    finally:
        watcher.cancel()
        await producer.stop()
        await connection.close()
    return sorted(seen[d] - produced[d] for d in produced)


def planner_cpu_seconds() -> float:
    """CPU of this process and of the planning processes it started and waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


async def bare_produce(bootstrap: str, values: list[tuple[bytes, bytes]]) -> float:
    """Baseline for firing: the same `action-due` (key, value) produced straight to a topic of
    their own by the relay's producer, with CloudEvents headers; seconds until all acknowledged."""
    await ensure_topics(bootstrap, ["bench-bare-action-due"])
    publisher = Publisher(bootstrap)
    try:
        started = time.perf_counter()
        await publisher.send_all(
            OutgoingMessage(
                topic="bench-bare-action-due",
                value=value,
                key=key,
                headers=cloudevent_headers(
                    event_type="com.recupero.action.due.v1",
                    event_id=str(uuid4()),
                    source="recupero/bench",
                    time=datetime.now(UTC),
                    tenant_id=TENANT,
                    debtor_id=key.decode().split(":", 1)[1],
                    correlation_id=None,
                ),
            )
            for key, value in values
        )
        return time.perf_counter() - started
    finally:
        await publisher.close()


def orchestrators_cpu(processes: list[asyncio.subprocess.Process]) -> float:
    return sum(cpu_seconds(process.pid) for process in processes)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--debtors", type=int, default=1_000_000)
    parser.add_argument("--fire", type=int, default=20_000)
    parser.add_argument("--payments", type=int, default=300)
    parser.add_argument(
        "--plan-processes",
        type=int,
        default=2,
        help="processes planning the day at once (this one and more it starts)",
    )
    parser.add_argument(
        "--plan-parts", type=int, default=8, help="key ranges the day's debtors are split into"
    )
    parser.add_argument("--plan-chunk", type=int, default=10_000, help="debtors a transaction")
    parser.add_argument(
        "--plan-only", action="store_true", help="stop after planning the day (no firing)"
    )
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="consumers and scheduler in one orchestrator process (default: one process each)",
    )
    parser.add_argument(
        "--firing-processes",
        type=int,
        default=2,
        help="scheduler processes sharing the due batch through SKIP LOCKED (without --one-process;"
        " default: one a core)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recupero-bench-orch-"))
    postgres = PostgresServer(work / "pg", free_port(), fast=False)
    kafka = KafkaBroker(work / "kafka", free_port(), free_port(), REPO / ".cache")
    postgres.start()
    kafka.start()
    orchestrators: list[asyncio.subprocess.Process] = []
    try:
        postgres.ensure_database("bench")
        dsn = postgres.dsn_for("bench")
        env = {
            **os.environ,
            "RECUPERO_DATABASE_URL": postgres.url_for("bench"),
            "RECUPERO_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "RECUPERO_LOG_LEVEL": "WARNING",
        }
        # The service runs its migrations, then stops: planning runs in this process.
        await stop(await start_service("recupero_orchestrator", env, free_port()))
        now = datetime.now(UTC)
        seeded = await seed(dsn, args.debtors, now)
        print(f"seeded {args.debtors:,} cases with COPY in {seeded:.1f} s")

        service, _ = bootstrap(
            OrchestratorSettings(
                database_url=postgres.url_for("bench"), kafka_bootstrap_servers=kafka.bootstrap
            )
        )
        postmaster = int((postgres.pgdata / "postmaster.pid").read_text().split()[0])
        cpu_before = planner_cpu_seconds(), postgres_cpu_seconds(postmaster)
        print(f"planning: {load_average()}")
        started = time.perf_counter()
        report = await plan_day(
            service,
            now,
            chunk_size=args.plan_chunk,
            parts=args.plan_parts,
            processes=args.plan_processes,
        )
        plan_s = time.perf_counter() - started
        cpu_after = planner_cpu_seconds(), postgres_cpu_seconds(postmaster)
        await service.engine.dispose()
        print(
            f"plan the day: {plan_s:.2f} s for {report.debtors:,} debtors "
            f"({report.debtors / plan_s:,.0f} debtors/s); {report.actions:,} actions written "
            f"({report.actions / plan_s:,.0f} rows/s), {report.skipped:,} skipped steps, "
            f"{report.moved:,} moved by the contact policy, {report.replanned:,} re-planned "
            f"one by one; {args.plan_processes} process(es), {args.plan_parts} key ranges, "
            f"chunks of {args.plan_chunk:,}"
        )
        planner_cpu = cpu_after[0] - cpu_before[0]
        print(
            f"  CPU: planner ({args.plan_processes} process(es)) {planner_cpu:.1f} s "
            f"({planner_cpu / max(report.debtors, 1) * 1000:.3f} ms a debtor), "
            f"PostgreSQL {cpu_after[1] - cpu_before[1]:.1f} s; {load_average()}"
        )
        bare_s, bare_rows = await bare_insert_select(dsn, now)
        print(f"baseline bare INSERT ... SELECT of the same {bare_rows:,} rows: {bare_s:.2f} s")
        print(f"ratio plan the day / bare INSERT ... SELECT: {plan_s / bare_s:.1f}x")
        if args.plan_only:
            return

        # Fire: a batch of the US debtors' pending actions comes due at once. Until then nothing
        # is due: what the plan made due by now would be fired as soon as the schedulers start,
        # before the clock, and the batch would be made of what that firing planned next.
        await fetch(
            dsn,
            "UPDATE orchestrator.scheduled_actions SET due_at = due_at + interval '30 days'"
            " WHERE status = 'pending'",
        )
        env["RECUPERO_SCHEDULER_POLL_INTERVAL_SECONDS"] = "0.2"
        env["RECUPERO_DAY_PLAN_ENABLED"] = "false"  # planned above; this measures firing
        roles = (
            [{}]
            if args.one_process
            else [{"RECUPERO_SCHEDULER_ENABLED": "false"}]
            + [{"RECUPERO_CONSUMERS_ENABLED": "false"}] * args.firing_processes
        )
        for role in roles:
            orchestrators.append(
                await start_service("recupero_orchestrator", {**env, **role}, free_port())
            )
        payers = await fetch(
            dsn,
            # Debtors with pending actions none of which is due within the hour: at some hours
            # of the run the plan makes other debtors' actions due now, and the scheduler would
            # claim (and lock) those too.
            "SELECT DISTINCT ON (c.debtor_id) c.debtor_id, c.snapshot_balance_minor, c.currency"
            " FROM orchestrator.cases c JOIN orchestrator.scheduled_actions a"
            " USING (tenant_id, debtor_id) WHERE a.status = 'pending'"
            " AND c.contact->>'country' <> 'US' AND NOT EXISTS (SELECT 1"
            " FROM orchestrator.scheduled_actions d WHERE d.tenant_id = c.tenant_id"
            " AND d.debtor_id = c.debtor_id AND d.status = 'pending'"
            " AND d.due_at < now() + interval '1 hour')"
            " ORDER BY c.debtor_id LIMIT $1",
            args.payments + 1,
        )
        # The orchestrator's consumer joins its group seconds after the service is ready (the
        # broker's initial rebalance delay): one payment is handled first, so that the figures
        # below measure handling, not the group join.
        warm_up, payers = payers[:1], payers[1:]
        await pay_in_full(
            kafka.bootstrap,
            dsn,
            [(r["debtor_id"], r["snapshot_balance_minor"], r["currency"]) for r in warm_up],
            per_second=30,
        )
        before = await asyncio.to_thread(events_on_kafka, kafka.bootstrap, "action-due")
        kafka_pids = processes_with(str(work / "kafka"))
        cpu_before = orchestrators_cpu(orchestrators), postgres_cpu_seconds(postmaster)
        roles_before = [cpu_seconds(process.pid) for process in orchestrators]
        kafka_before = sum(cpu_seconds(pid) for pid in kafka_pids)
        connection = await asyncpg.connect(dsn)
        try:
            # The first step of debtors who have had none yet: the planner proposes it for now
            # (a follow-up, timed from a contact, would wait for its own time).
            fire_at = datetime(2000, 1, 1, tzinfo=UTC)
            batch = [
                row["action_id"]
                for row in await connection.fetch(
                    "UPDATE orchestrator.scheduled_actions SET due_at = $1 WHERE action_id IN ("
                    " SELECT a.action_id FROM orchestrator.scheduled_actions a"
                    " JOIN orchestrator.cases c USING (tenant_id, debtor_id)"
                    " WHERE a.status = 'pending' AND c.contact->>'country' = 'US'"
                    " AND a.step_id = 'whatsapp' AND a.round = 0 AND a.attempt = 0 LIMIT $2)"
                    " RETURNING action_id",
                    fire_at,
                    args.fire,
                )
            ]
            started = time.perf_counter()
            payments = asyncio.create_task(
                pay_in_full(
                    kafka.bootstrap,
                    dsn,
                    [(r["debtor_id"], r["snapshot_balance_minor"], r["currency"]) for r in payers],
                    per_second=30,
                )
            )
            # The batch is what is still pending at `fire_at` (no other action is due then). Not
            # `action_id = ANY(batch)`: PostgreSQL compared each pending row with the whole
            # batch, and this poll alone took more CPU than firing's statements.
            while await connection.fetchval(
                "SELECT count(*) FROM orchestrator.scheduled_actions"
                " WHERE status = 'pending' AND due_at = $1",
                fire_at,
            ) or await connection.fetchval(
                "SELECT count(*) FROM orchestrator.outbox WHERE topic = 'action-due'"
            ):
                await asyncio.sleep(0.1)
            fire_s = time.perf_counter() - started
            outcomes = await connection.fetch(
                "SELECT status, count(*) AS actions FROM orchestrator.scheduled_actions"
                " WHERE action_id = ANY($1) GROUP BY status ORDER BY status",
                batch,
            )
        finally:
            await connection.close()
        cpu_after = orchestrators_cpu(orchestrators), postgres_cpu_seconds(postmaster)
        roles_cpu = [
            cpu_seconds(process.pid) - before
            for process, before in zip(orchestrators, roles_before, strict=True)
        ]
        kafka_cpu = sum(cpu_seconds(pid) for pid in kafka_pids) - kafka_before
        fired = await asyncio.to_thread(events_on_kafka, kafka.bootstrap, "action-due") - before
        print(
            f"fire: {len(batch):,} actions due at once, {fired:,} action-due on Kafka "
            f"in {fire_s:.2f} s ({fired / fire_s:,.0f}/s); the batch's actions now: "
            + ", ".join(f"{row['actions']:,} {row['status']}" for row in outcomes)
        )
        print(
            f"  CPU: orchestrator ({len(orchestrators)} process(es)) {cpu_after[0] - cpu_before[0]:.1f} s "
            f"({(cpu_after[0] - cpu_before[0]) / max(len(batch), 1) * 1000:.2f} ms an action), "
            f"PostgreSQL {cpu_after[1] - cpu_before[1]:.1f} s "
            f"({(cpu_after[1] - cpu_before[1]) / max(fired, 1) * 1000:.2f} ms an action-due), "
            f"Kafka {kafka_cpu:.1f} s ({kafka_cpu / max(fired, 1) * 1000:.2f} ms an action-due); "
            f"{load_average()}"
        )
        names = (
            ["one process"]
            if args.one_process
            else ["consumers"] + ["scheduler"] * (len(orchestrators) - 1)
        )
        print(
            "  CPU by orchestrator process: "
            + ", ".join(f"{name} {cpu:.1f} s" for name, cpu in zip(names, roles_cpu, strict=True))
        )
        produced = [
            (key, value)
            for key, value in await asyncio.to_thread(action_due_messages, kafka.bootstrap, fired)
        ]
        bare_fire_s = await bare_produce(kafka.bootstrap, produced)
        print(
            f"baseline: the same {len(produced):,} action-due produced straight to Kafka in "
            f"{bare_fire_s:.2f} s ({len(produced) / bare_fire_s:,.0f}/s); ratio firing / bare "
            f"produce: {fire_s / bare_fire_s:.1f}x"
        )
        latencies = await payments
        if latencies:
            p50 = latencies[len(latencies) // 2]
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(
                f"payment-received (full) to pending actions cancelled, {len(latencies)} debtors "
                f"while the batch fired: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
                f"max {latencies[-1] * 1000:.0f} ms"
            )
        print(load_average())
    finally:
        for orchestrator in orchestrators:
            await stop(orchestrator)
        kafka.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)  # a million-debtor run leaves gigabytes


if __name__ == "__main__":
    asyncio.run(main())

"""Notifier benchmark: WhatsApp template messages a second, from `action-due` on Kafka to the
provider's acknowledgement, against a bare loop of HTTP posts to the same provider server in the
same run.

    uv run python bench/notifier_throughput.py [--messages 60000] [--processes 1]

- PostgreSQL and Kafka of its own (fsync on), the local WhatsApp Cloud API peer in a process of
  its own (`python -m recupero_devstack whatsapp`), sending its signed `sent` and `delivered`
  webhooks to the notifier as Meta does; the notifier as it runs in production
  (`python -m recupero_notifier`, `--processes` of them in one consumer group) with the WhatsApp
  rate limit lifted (`RECUPERO_WHATSAPP_MESSAGES_PER_SECOND=0`).
- `--messages` `action-due` events for distinct debtors are encoded beforehand, then produced as
  fast as the producer goes; the clock starts with the first. It stops when the notifier has
  recorded every provider acknowledgement (`deliveries.status = 'sent'`); the times to the last
  `message-sent` and to the last `message-status-changed` (`delivered`, from the webhooks) on
  Kafka are printed too. The peer must have received exactly one request per action.
- Baseline: the very request bodies the notifier sent (read back from the peer), posted again
  with httpx to the same peer process with `--concurrency` requests in flight (the peer sends its
  webhooks for them too, and the notifier verifies and applies them meanwhile).

Prints the rates, their ratio, the load average and the CPU seconds each process used; the
numbers go to bench/RESULTS.md by hand.
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import confluent_kafka
import httpx
from harness import (
    cpu_seconds,
    events_on_kafka,
    load_average,
    postgres_cpu_seconds,
    processes_with,
    start_service,
    stop,
)

from recupero_devstack._util import free_port, port_open
from recupero_devstack.kafka import KafkaBroker
from recupero_devstack.postgres import PostgresServer
from recupero_events import ActionDue, Channel, ContactDetails, Money, encode

REPO = Path(__file__).resolve().parents[1]
TENANT = "bench-bank"
ACCESS_TOKEN = "bench-whatsapp-token"
APP_SECRET = "bench-whatsapp-app-secret"
PHONE_NUMBER_ID = "106540352242922"
COUNTRIES = [
    ("MX", "America/Mexico_City", "es-MX", "MXN", "+52155"),
    ("CO", "America/Bogota", "es-CO", "COP", "+57300"),
    ("PE", "America/Lima", "es-PE", "PEN", "+51987"),
    ("AR", "America/Argentina/Buenos_Aires", "es-AR", "ARS", "+54911"),
]


def actions(count: int) -> list[ActionDue]:
    now = datetime.now(UTC)
    due = []
    for n in range(count):
        country, zone, locale, currency, prefix = COUNTRIES[n % len(COUNTRIES)]
        due.append(
            ActionDue(
                tenant_id=TENANT,
                debtor_id=f"D{n:07d}",
                action_id=uuid4(),
                channel=Channel.WHATSAPP,
                template="first-reminder",
                strategy="default/1",
                scheduled_for=now,
                contact=ContactDetails(
                    name=f"Cliente {n}",
                    phone=f"{prefix}{n:07d}",
                    country=country,
                    time_zone=zone,
                    locale=locale,
                ),
                balance=Money(amount_minor=100_000 + n, currency=currency),
                days_past_due=15,
                oldest_due_on=date(2026, 3, 5),
            )
        )
    return due


def produce(bootstrap: str, events: list[Any]) -> None:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    for event in events:
        while True:
            try:
                producer.produce(
                    event.topic, event.value, key=event.key, headers=list(event.headers)
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("action-due events not all produced")


async def delivered(dsn: str) -> tuple[int, int]:
    """(deliveries the provider acknowledged, deliveries that ended otherwise)."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'sent') AS sent,"
            " count(*) FILTER (WHERE status NOT IN ('sent', 'sending')) AS other"
            " FROM notifier.deliveries"
        )
        return int(row["sent"]), int(row["other"])
    finally:
        await connection.close()


async def wait_for_topic(bootstrap: str, topic: str, expected: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while await asyncio.to_thread(events_on_kafka, bootstrap, topic) < expected:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def bare_posts(url: str, bodies: list[dict[str, Any]], concurrency: int) -> float:
    """The same requests with httpx alone, `concurrency` in flight; returns the seconds."""
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    pending = iter(bodies)
    # As many kept-alive connections as requests in flight, as the notifier keeps
    # (`RECUPERO_PROVIDER_MAX_CONNECTIONS`, 16), in httpx's own pool.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker() -> None:
            for body in pending:
                try:
                    response = await client.post(url, json=body, headers=headers)
                except httpx.TransportError:
                    # The peer dropped a kept-alive connection under load: post it again.
                    response = await client.post(url, json=body, headers=headers)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--processes", type=int, default=1, help="notifier processes")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="requests in flight in the bare loop"
    )
    parser.add_argument("--log-level", default="WARNING", help="the notifier's log level")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recupero-bench-notifier-"))
    postgres = PostgresServer(work / "pg", free_port(), fast=False)
    kafka = KafkaBroker(work / "kafka", free_port(), free_port(), REPO / ".cache")
    postgres.start()
    kafka.start()
    notifiers: list[asyncio.subprocess.Process] = []
    peer = None
    try:
        postgres.ensure_database("bench")
        dsn = postgres.dsn_for("bench")
        ports = [free_port() for _ in range(args.processes)]
        peer_port = free_port()
        peer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "recupero_devstack",
            "whatsapp",
            f"--port={peer_port}",
            f"--access-token={ACCESS_TOKEN}",
            f"--app-secret={APP_SECRET}",
            f"--phone-number-id={PHONE_NUMBER_ID}",
            f"--webhook-url=http://127.0.0.1:{ports[0]}/webhooks/whatsapp",
            stdout=asyncio.subprocess.DEVNULL,
        )
        while not port_open(peer_port):
            await asyncio.sleep(0.1)
        peer_url = f"http://127.0.0.1:{peer_port}"
        env = {
            **os.environ,
            "RECUPERO_DATABASE_URL": postgres.url_for("bench"),
            "RECUPERO_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "RECUPERO_LOG_LEVEL": args.log_level,
            "RECUPERO_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",
            "RECUPERO_WHATSAPP_API_URL": peer_url,
            "RECUPERO_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "RECUPERO_WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
            "RECUPERO_WHATSAPP_APP_SECRET": APP_SECRET,
            "RECUPERO_WHATSAPP_VERIFY_TOKEN": "bench-verify-token",
            "RECUPERO_WHATSAPP_MESSAGES_PER_SECOND": "0",  # the rate limit lifted for the run
        }
        # One after the other: the first runs the migrations and creates the topics.
        for port in ports:
            notifiers.append(await start_service("recupero_notifier", env, port))

        due = actions(args.messages)
        events = [encode(action, source="recupero/orchestrator") for action in due]
        count = len(events)
        postmaster = int((postgres.pgdata / "postmaster.pid").read_text().split()[0])
        kafka_pids = processes_with(str(work / "kafka"))
        load_before = load_average()

        def cpu_now() -> dict[str, float]:
            return {
                **{f"notifier {n}": cpu_seconds(p.pid) for n, p in enumerate(notifiers, 1)},
                "whatsapp peer": cpu_seconds(peer.pid) if peer is not None else 0.0,
                "PostgreSQL": postgres_cpu_seconds(postmaster),
                "Kafka": sum(cpu_seconds(pid) for pid in kafka_pids),
                "benchmark": time.process_time(),
            }

        cpu_before = cpu_now()
        started = time.perf_counter()
        await asyncio.to_thread(produce, kafka.bootstrap, events)
        produced_s = time.perf_counter() - started
        while (done := await delivered(dsn))[0] + done[1] < count:
            await asyncio.sleep(0.1)
        acknowledged_s = time.perf_counter() - started
        cpu_acknowledged = cpu_now()
        all_sent = await wait_for_topic(kafka.bootstrap, "message-sent", count, 120)
        sent_s = time.perf_counter() - started
        all_statuses = await wait_for_topic(kafka.bootstrap, "message-status-changed", count, 120)
        status_s = time.perf_counter() - started
        cpu_after = cpu_now()
        load_after = load_average()

        async with httpx.AsyncClient(timeout=120) as client:
            received = (await client.get(f"{peer_url}/_peer/requests")).json()
            callbacks = (await client.get(f"{peer_url}/_peer/callbacks")).json()
        answers: dict[str, int] = {}
        for callback in callbacks:
            answer = str(callback["status_code"] or callback.get("error"))
            answers[answer] = answers.get(answer, 0) + 1
        per_action: dict[str, int] = {}
        for record in received:
            action_id = record["biz_opaque_callback_data"]
            per_action[action_id] = per_action.get(action_id, 0) + 1
        expected_ids = {str(action.action_id) for action in due}
        exactly_once = set(per_action) == expected_ids and set(per_action.values()) == {1}

        print(f"{count:,} WhatsApp template messages, {args.processes} notifier process(es)")
        print(f"  produced to action-due in {produced_s:.2f} s")
        print(
            f"  provider acknowledgements recorded: {acknowledged_s:.2f} s "
            f"({count / acknowledged_s:,.0f} msg/s); sent {done[0]:,}, other {done[1]:,}"
        )
        print(
            f"  last message-sent on Kafka: {sent_s:.2f} s ({count / sent_s:,.0f} msg/s)"
            + ("" if all_sent else " (NOT ALL)")
        )
        print(
            f"  last message-status-changed (delivered) on Kafka: {status_s:.2f} s "
            f"({count / status_s:,.0f} msg/s)" + ("" if all_statuses else " (NOT ALL)")
        )
        print(
            f"  the peer received {len(received):,} requests for {len(per_action):,} actions: "
            f"{'exactly one per action' if exactly_once else 'NOT exactly one per action'}"
        )
        print(
            f"  the peer's {len(callbacks):,} signed status notifications were answered: "
            + ", ".join(f"{answer} x {times:,}" for answer, times in sorted(answers.items()))
        )
        print(f"  load average before {load_before}, after {load_after}")
        print(
            "  CPU seconds to the last acknowledgement / to the last status event"
            " (ms of CPU a message):"
        )
        for name in cpu_before:
            used = cpu_after[name] - cpu_before[name]
            print(
                f"    {name:14} {cpu_acknowledged[name] - cpu_before[name]:7.1f}"
                f" / {used:7.1f}  ({used / count * 1000:.2f} ms)"
            )

        bodies = [record["request"] for record in received]
        url = f"{peer_url}/v21.0/{PHONE_NUMBER_ID}/messages"
        peer_cpu = cpu_seconds(peer.pid)
        bare_s = await bare_posts(url, bodies, args.concurrency)
        peer_cpu = cpu_seconds(peer.pid) - peer_cpu
        print(
            f"baseline: the same {len(bodies):,} requests with httpx alone, "
            f"{args.concurrency} in flight: {bare_s:.2f} s ({len(bodies) / bare_s:,.0f} posts/s; "
            f"peer CPU {peer_cpu:.1f} s)"
        )
        print(
            f"ratio notifier / bare posts (time to the last acknowledgement): "
            f"{acknowledged_s / bare_s:.1f}x"
        )
        print(f"load average at the end: {load_average()}")
    finally:
        for process in notifiers:
            await stop(process)
        if peer is not None:
            await stop(peer)
        kafka.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

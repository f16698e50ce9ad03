"""What the benchmarks share: counting events on Kafka, the CPU a process (or PostgreSQL) used,
starting a service as it runs in production and stopping it, the machine's load."""

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import confluent_kafka
import httpx


def events_on_kafka(bootstrap: str, topic: str) -> int:
    """How many messages the topic holds: the sum of its partitions' high watermarks."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "bench"})
    try:
        for _ in range(50):  # a topic created moments ago may not have its leaders yet
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return sum(
                    consumer.get_watermark_offsets(
                        confluent_kafka.TopicPartition(topic, p), timeout=10
                    )[1]
                    for p in partitions
                )
            except confluent_kafka.KafkaException:
                time.sleep(0.2)
        raise RuntimeError(f"no watermarks for {topic}")
    finally:
        consumer.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(postmaster: int) -> float:
    """CPU time of the postmaster's children still running (the backends and helpers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            continue
    return total


def processes_with(argument: str) -> list[int]:
    """Pids whose command line holds `argument` (the Kafka broker's JVM, by its data dir)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if argument.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def start_service(
    module: str, env: Mapping[str, str], port: int, ready_within_s: float = 180
) -> asyncio.subprocess.Process:
    """`python -m <module>` (the service's real entrypoint) on `port`, once `/readyz` says so."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env={**env, "RECUPERO_HTTP_PORT": str(port)}
    )
    deadline = time.monotonic() + ready_within_s
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not become ready on port {port}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 60)

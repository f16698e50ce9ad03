"""The running stack for end-to-end tests: all six services as real processes.

Each service runs as `python -m recupero_<service>` on a free port, against the session's real
PostgreSQL (a fresh database per stack) and Kafka, with an in-process SMTP sink standing in for the
mail provider. Tests drive it over HTTP as a client would, and may kill and restart a service.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest

from recupero_devstack._util import free_port
from recupero_devstack.kafka import KafkaBroker
from recupero_devstack.smtp import SmtpSink
from recupero_runtime.auth import hash_api_key
from tests.conftest import CACHE, create_database

SERVICES = ("ingest", "segmenter", "orchestrator", "notifier", "payments", "portal-api")


@dataclass
class Tenant:
    tenant_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    smtp: SmtpSink
    tenants: list[Tenant]
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def log_of(self, service: str) -> str:
        return (self.workdir / f"{service}.log").read_text(errors="replace")

    def start(self, service: str) -> None:
        port = self.ports.setdefault(service, free_port())
        log = self._logs.get(service) or open(self.workdir / f"{service}.log", "ab")  # noqa: SIM115
        self._logs[service] = log
        module = "recupero_" + service.replace("-", "_")
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**self.env, "RECUPERO_HTTP_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, service: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[service]
            if process.poll() is not None:
                raise RuntimeError(
                    f"{service} exited with {process.returncode}:\n{self.log_of(service)[-4000:]}"
                )
            try:
                if httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{service} not ready:\n{self.log_of(service)[-4000:]}")

    def kill(self, service: str) -> None:
        """SIGKILL: no graceful shutdown, nothing flushed, as in a crash."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                print(f"{name} did not stop in time")
        self.processes.clear()
        for log in self._logs.values():
            log.close()


StartStack = Callable[..., Stack]


@pytest.fixture
def start_stack(tmp_path: Path, database_server_url: str) -> Iterator[StartStack]:
    stacks: list[Stack] = []
    brokers: list[KafkaBroker] = []

    def start(
        tenant_ids: tuple[str, ...] = ("acme-bank",),
        services: tuple[str, ...] = SERVICES,
        **overrides: str,
    ) -> Stack:
        database_url = asyncio.run(create_database(database_server_url))
        # A broker of its own: consumer groups are named after the services, so on a shared
        # broker one stack's services would pick up the events another stack left unconsumed.
        kafka_bootstrap = os.environ.get("RECUPERO_TEST_KAFKA_BOOTSTRAP")
        if kafka_bootstrap is None:
            broker = KafkaBroker(
                tmp_path / f"kafka-{len(brokers)}", free_port(), free_port(), CACHE
            )
            broker.start()
            brokers.append(broker)
            kafka_bootstrap = broker.bootstrap
        smtp = SmtpSink(tmp_path / "mail", free_port(), free_port())
        smtp.start()
        # Stacks share the session's broker: unique tenants keep their events apart.
        run = os.urandom(3).hex()
        tenants = [
            Tenant(f"{name}-{run}", f"key-{name}-{os.urandom(8).hex()}") for name in tenant_ids
        ]
        api_keys = {hash_api_key(t.api_key): t.tenant_id for t in tenants}
        env = {
            **os.environ,
            "RECUPERO_DATABASE_URL": database_url,
            "RECUPERO_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "RECUPERO_API_KEYS": json.dumps(api_keys),
            "RECUPERO_SMTP_PORT": str(smtp.smtp_port),
            "RECUPERO_SCHEDULER_POLL_INTERVAL_SECONDS": "0.2",
            **overrides,
        }
        stack = Stack(workdir=tmp_path, env=env, smtp=smtp, tenants=tenants)
        stacks.append(stack)
        for service in services:
            stack.start(service)
        for service in services:
            stack.wait_ready(service)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
        stack.smtp.stop()
    for broker in brokers:
        broker.stop()

"""A service builds and runs on its own: installed alone into a fresh virtualenv (the Dockerfile's
steps), it starts against PostgreSQL and Kafka and reports ready, with no other service present."""

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from recupero_devstack._util import free_port
from tests.conftest import create_database

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_the_notifier_installs_alone_and_starts(
    tmp_path: Path, database_server_url: str, kafka_bootstrap: str
) -> None:
    venv = tmp_path / "notifier"
    subprocess.run(
        ["sh", "deploy/docker/install-service.sh", "notifier", str(venv)], cwd=REPO, check=True
    )
    installed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "recupero-notifier" in installed
    assert "recupero-ingest" not in installed and "recupero-devstack" not in installed

    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "RECUPERO_DATABASE_URL": asyncio.run(create_database(database_server_url)),
        "RECUPERO_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RECUPERO_HTTP_PORT": str(port),
    }
    log = (tmp_path / "notifier.log").open("wb")
    process = subprocess.Popen(
        [venv / "bin" / "python", "-m", "recupero_notifier"],
        env=env,
        cwd=tmp_path,  # away from the repository: only the installed code can be imported
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, (
            tmp_path / "notifier.log"
        ).read_text()
        assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    # uvicorn re-raises SIGTERM after its graceful shutdown; ours ran to the end.
    assert '"event": "service_stopped"' in (tmp_path / "notifier.log").read_text()

"""The local stack: Kafka, PostgreSQL, the SMTP sink, the WhatsApp and Twilio peers and the six
services under honcho.

    uv run python deploy/local/stack.py up|down|status

`up` writes `var/Procfile` and `var/stack.env`, starts honcho in the background (every process's
output goes to `var/log/stack.log`, prefixed with its name), creates the database, and waits until
every service answers `/readyz`. Give `DATABASE_URL` to use an existing PostgreSQL instead of a
local one. The demo tenant's API key is created once and kept in `var/demo-tenant.key`.
`RECUPERO_STACK_DIR` and `RECUPERO_STACK_PORT_OFFSET` put a second stack beside the first
(`recupero_devstack.layout`).
"""

import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from recupero_devstack._util import port_open
from recupero_devstack.layout import SERVICES, stack_layout
from recupero_devstack.postgres import PostgresServer
from recupero_runtime.auth import hash_api_key, new_api_key

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = stack_layout(ROOT)
VAR, LOG, KEY = LAYOUT.var, LAYOUT.log, LAYOUT.key
PID = VAR / "stack.pid"
DEMO_TENANT = "demo-bank"

KAFKA_PORT, KAFKA_CONTROLLER_PORT = LAYOUT.port("kafka"), LAYOUT.port("kafka-controller")
POSTGRES_PORT = LAYOUT.port("postgres")
SMTP_PORT, SMTP_HTTP_PORT = LAYOUT.port("smtp"), LAYOUT.port("smtp-http")
WHATSAPP_PORT, TWILIO_PORT = LAYOUT.port("whatsapp"), LAYOUT.port("twilio")
NOTIFIER_URL = LAYOUT.url("notifier")
# Credentials the local provider peers and the notifier share; meaningless anywhere else.
WHATSAPP = {
    "access_token": "dev-whatsapp-token",
    "app_secret": "dev-whatsapp-app-secret",
    "verify_token": "dev-whatsapp-verify-token",
    "phone_number_id": "106540352242922",
}
TWILIO = {
    "account_sid": "AC" + "0" * 32,
    "auth_token": "dev-twilio-auth-token",
    "phone_number": "+15005550006",
}
SERVICE_PORTS = {service: LAYOUT.port(service) for service in SERVICES}


def _database_url() -> str | None:
    given = os.environ.get("DATABASE_URL")
    if given and given.startswith("postgresql://"):
        given = "postgresql+asyncpg://" + given.removeprefix("postgresql://")
    return given


def _demo_key() -> str:
    if not KEY.exists():
        KEY.write_text(new_api_key() + "\n")
        KEY.chmod(0o600)
    return KEY.read_text().strip()


def _procfile(local_postgres: bool) -> str:
    python = shlex.quote(sys.executable)
    lines = [
        f"kafka: {python} -m recupero_devstack kafka --port {KAFKA_PORT} "
        f"--controller-port {KAFKA_CONTROLLER_PORT} --data {shlex.quote(str(VAR / 'kafka'))} "
        "--cache .cache",
        f"smtp: {python} -m recupero_devstack smtp --port {SMTP_PORT} "
        f"--http-port {SMTP_HTTP_PORT} --mailbox {shlex.quote(str(VAR / 'mail'))}",
        f"whatsapp: {python} -m recupero_devstack whatsapp --port {WHATSAPP_PORT} "
        f"--access-token {WHATSAPP['access_token']} --app-secret {WHATSAPP['app_secret']} "
        f"--verify-token {WHATSAPP['verify_token']} "
        f"--phone-number-id {WHATSAPP['phone_number_id']} "
        f"--webhook-url {NOTIFIER_URL}/webhooks/whatsapp",
        # The demo's callees press 1 (promise to pay) on every collection call.
        f"twilio: {python} -m recupero_devstack twilio --port {TWILIO_PORT} "
        f"--account-sid {TWILIO['account_sid']} --auth-token {TWILIO['auth_token']} "
        f"--phone-number {TWILIO['phone_number']} "
        f"--sms-url {NOTIFIER_URL}/webhooks/twilio/inbound --auto-digits 1",
    ]
    if local_postgres:
        lines.append(
            f"postgres: {python} -m recupero_devstack postgres --port {POSTGRES_PORT} "
            f"--data {shlex.quote(str(VAR / 'postgres'))}"
        )
    for service, port in SERVICE_PORTS.items():
        module = "recupero_" + service.replace("-", "_")
        lines.append(f"{service}: env RECUPERO_HTTP_PORT={port} {python} -m {module}")
    return "\n".join(lines) + "\n"


def _running_pid() -> int | None:
    if not PID.exists():
        return None
    pid = int(PID.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _ready(service: str, port: int) -> str:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.HTTPError:
        return "not answering"
    return "ready" if response.status_code == 200 else f"not ready: {response.text[:200]}"


def _is_ready(service: str, port: int) -> bool:
    return _ready(service, port) == "ready"


def up() -> None:
    if _running_pid():
        print("stack already running; `make status` shows it")
        return
    for folder in ("log", "kafka", "mail"):
        (VAR / folder).mkdir(parents=True, exist_ok=True)
    database_url = _database_url()
    local_postgres = database_url is None
    ports = (KAFKA_PORT, SMTP_PORT, WHATSAPP_PORT, TWILIO_PORT, *SERVICE_PORTS.values())
    busy = [port for port in ports if port_open(port)]
    if local_postgres and port_open(POSTGRES_PORT):
        busy.append(POSTGRES_PORT)
    if busy:
        sys.exit(f"ports already in use: {busy}; stop whatever holds them (or `make down`)")
    if database_url is None:
        database_url = f"postgresql+asyncpg://postgres@127.0.0.1:{POSTGRES_PORT}/recupero"
    key = _demo_key()
    env = {
        "RECUPERO_DATABASE_URL": database_url,
        "RECUPERO_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_PORT}",
        "RECUPERO_API_KEYS": json.dumps({hash_api_key(key): DEMO_TENANT}),
        "RECUPERO_SMTP_PORT": str(SMTP_PORT),
        "RECUPERO_PUBLIC_URL": NOTIFIER_URL,
        "RECUPERO_WHATSAPP_API_URL": f"http://127.0.0.1:{WHATSAPP_PORT}",
        "RECUPERO_WHATSAPP_PHONE_NUMBER_ID": WHATSAPP["phone_number_id"],
        "RECUPERO_WHATSAPP_ACCESS_TOKEN": WHATSAPP["access_token"],
        "RECUPERO_WHATSAPP_APP_SECRET": WHATSAPP["app_secret"],
        "RECUPERO_WHATSAPP_VERIFY_TOKEN": WHATSAPP["verify_token"],
        "RECUPERO_TWILIO_API_URL": f"http://127.0.0.1:{TWILIO_PORT}",
        "RECUPERO_TWILIO_ACCOUNT_SID": TWILIO["account_sid"],
        "RECUPERO_TWILIO_AUTH_TOKEN": TWILIO["auth_token"],
        "RECUPERO_TWILIO_FROM_NUMBER": TWILIO["phone_number"],
        "PYTHONUNBUFFERED": "1",
    }
    (VAR / "Procfile").write_text(_procfile(local_postgres))
    (VAR / "stack.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
    print("fetching Kafka from Maven Central if not cached ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "recupero_devstack", "fetch-kafka", "--cache", ".cache"],
        cwd=ROOT,
        check=True,
    )
    with LOG.open("ab") as log:
        honcho = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "honcho",
                "-f",
                str(VAR / "Procfile"),
                "-e",
                str(VAR / "stack.env"),
                "start",
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    PID.write_text(str(honcho.pid))
    if local_postgres:
        server = PostgresServer(VAR / "postgres", POSTGRES_PORT)
        _wait("postgres", lambda: port_open(POSTGRES_PORT), honcho)
        _retry(lambda: server.ensure_database("recupero"))
    for service, port in SERVICE_PORTS.items():
        _wait(service, functools.partial(_is_ready, service, port), honcho)
    print(f"stack up; logs: {LAYOUT.shown(LOG)}")
    print(f"demo tenant '{DEMO_TENANT}' API key: {key}")


def _wait(what: str, ready: Callable[[], bool], honcho: subprocess.Popen[bytes]) -> None:
    print(f"waiting for {what} ...", flush=True)
    deadline = time.monotonic() + 180
    while not ready():
        if honcho.poll() is not None:
            sys.exit(f"the stack stopped while starting {what}; see {LOG}")
        if time.monotonic() > deadline:
            sys.exit(f"{what} did not become ready in 180 s; see {LOG}")
        time.sleep(0.5)


def _retry(action: Callable[[], None]) -> None:
    for attempt in range(20):
        try:
            action()
            return
        except Exception:
            if attempt == 19:
                raise
            time.sleep(0.5)


def down() -> None:
    pid = _running_pid()
    if pid is None:
        print("stack not running")
        PID.unlink(missing_ok=True)
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _running_pid() and time.monotonic() < deadline:
        time.sleep(0.3)
    if _running_pid():
        os.killpg(pid, signal.SIGKILL)
    PID.unlink(missing_ok=True)
    print("stack stopped")


def status() -> None:
    pid = _running_pid()
    print(f"honcho: {'running, pid ' + str(pid) if pid else 'not running'}")
    print(f"kafka 127.0.0.1:{KAFKA_PORT}: {'up' if port_open(KAFKA_PORT) else 'down'}")
    if _database_url() is None:
        print(f"postgres 127.0.0.1:{POSTGRES_PORT}: {'up' if port_open(POSTGRES_PORT) else 'down'}")
    print(f"smtp 127.0.0.1:{SMTP_PORT}: {'up' if port_open(SMTP_PORT) else 'down'}")
    for peer, port in (("whatsapp", WHATSAPP_PORT), ("twilio", TWILIO_PORT)):
        print(f"{peer} peer http://127.0.0.1:{port}: {'up' if port_open(port) else 'down'}")
    for service, port in SERVICE_PORTS.items():
        print(f"{service} http://127.0.0.1:{port}: {_ready(service, port)}")
    print(f"logs: {LAYOUT.shown(LOG)}")


def main() -> None:
    commands = {"up": up, "down": down, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: stack.py {'|'.join(commands)}")
    commands[sys.argv[1]]()


if __name__ == "__main__":
    main()

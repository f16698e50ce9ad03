"""What both provider peers share: a Starlette app served by uvicorn in a background thread, the
record of received requests, outages on demand, and signed callbacks sent from the server's loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from recupero_devstack._util import LocalServer
from recupero_devstack.providers._callback_http import CallbackConnection, CallbackFailed

_T = TypeVar("_T")

log = logging.getLogger(__name__)

# Callbacks in flight at once, each sender on a kept-alive connection (`_callback_http`). A task
# per callback piled thousands of waiters onto an HTTP client's pool when the receiver was slower
# than the API, and httpx's pool bookkeeping is quadratic in its waiters: the peer fell to ~14
# requests a second, spending ~50 ms of CPU on each.
CALLBACK_SENDERS = 16

Record = dict[str, Any]


OUTAGE_STATUSES = (429, 500, 503)


@dataclass
class Outage:
    """Every API request fails until `until` (monotonic seconds), with each of `statuses` in
    turn; 429 and 503 carry `Retry-After: retry_after` when it is set."""

    statuses: tuple[int, ...]
    until: float
    retry_after: int | None = None
    served: int = 0

    @property
    def status(self) -> int:
        return self.statuses[0]


def tenant_accounts(path: str | None, provider: str) -> list[dict[str, Any]]:
    """The tenants' accounts of one provider (`whatsapp`, `twilio`) in the notifier's provider
    accounts file (`RECUPERO_PROVIDER_ACCOUNTS_FILE`), so a peer serves the accounts the
    notifier sends from."""
    if path is None:
        return []
    with open(path, encoding="utf-8") as file:
        tenants = json.load(file).get("tenants", {})
    return [accounts[provider] for accounts in tenants.values() if provider in accounts]


class ProviderPeer(LocalServer):
    """Base of the provider peers. Subclasses add their routes and error shapes."""

    name = "provider"

    def __init__(self, port: int) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._received: list[Record] = []
        self._callbacks: list[Record] = []
        self._outage: Outage | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # For the handshake's GET; callbacks leave through `_connections`.
        self._client: httpx.AsyncClient | None = None
        # Kept-alive callback connections, the last one used first.
        self._connections: asyncio.LifoQueue[CallbackConnection] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._backlog: asyncio.Queue[Coroutine[Any, Any, object]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what tests read and steer -------------------------------------------------------------

    def received(self) -> list[Record]:
        """Every request the API accepted, oldest first."""
        with self._lock:
            return list(self._received)

    def callbacks(self) -> list[Record]:
        """Every callback sent: url, parameters or body, and the status the receiver answered."""
        with self._lock:
            return list(self._callbacks)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._callbacks.clear()

    def fail(
        self, status: int | Sequence[int], seconds: float, retry_after: int | None = None
    ) -> None:
        """Answer every API request with `status` (500, 429, 503; several take turns) for the
        next `seconds`; 429 and 503 say `Retry-After: retry_after` when given."""
        statuses = (status,) if isinstance(status, int) else tuple(status)
        if not statuses or any(code not in OUTAGE_STATUSES for code in statuses):
            raise ValueError(f"outage statuses must be among {OUTAGE_STATUSES}, not {statuses}")
        with self._lock:
            self._outage = Outage(statuses, time.monotonic() + seconds, retry_after)

    def recover(self) -> None:
        with self._lock:
            self._outage = None

    def _outage_reply(self) -> Response | None:
        """The failure this API request gets during an outage; None when there is none."""
        with self._lock:
            outage = self._outage
            if outage is None or time.monotonic() >= outage.until:
                return None
            status = outage.statuses[outage.served % len(outage.statuses)]
            outage.served += 1
        response = self.outage_response(replace(outage, statuses=(status,)))
        if status in (429, 503) and outage.retry_after is not None:
            response.headers["Retry-After"] = str(outage.retry_after)
        return response

    def _keep(self, record: Record) -> None:
        with self._lock:
            self._received.append(record)

    def _find(self, key: str, value: str) -> Record | None:
        with self._lock:
            return next((r for r in self._received if r.get(key) == value), None)

    # --- callbacks --------------------------------------------------------------------------------

    async def _post_callback(
        self, url: str, *, content: bytes, headers: dict[str, str], record: Record
    ) -> None:
        assert self._connections is not None
        connection = await self._connections.get()
        try:
            response = await connection.post(url, content, headers)
        except CallbackFailed as exc:
            outcome: Record = {**record, "url": url, "status_code": None, "error": str(exc)}
            with self._lock:
                self._callbacks.append(outcome)
            return
        finally:
            self._connections.put_nowait(connection)
        with self._lock:
            self._callbacks.append(
                {
                    **record,
                    "url": url,
                    "status_code": response.status_code,
                    "response": response.text,
                }
            )

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        """Callbacks leave after the API answered, as the providers' do, in the order queued,
        `CALLBACK_SENDERS` at a time."""
        assert self._backlog is not None
        self._backlog.put_nowait(work)

    async def _send_callbacks(self) -> None:
        assert self._backlog is not None
        while True:
            work = await self._backlog.get()
            try:
                await work
            except Exception:
                log.exception("%s peer: a callback failed", self.name)

    def call(self, factory: Callable[[], Awaitable[_T]]) -> _T:
        """Run a coroutine on the server's loop from another thread and wait for its result."""
        if self._loop is None:
            raise RuntimeError(f"{self.name} peer is not running")

        async def run() -> _T:
            return await factory()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    # --- the HTTP app -----------------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        raise NotImplementedError

    def outage_response(self, outage: Outage) -> Response:
        raise NotImplementedError

    async def send_status(
        self, message_id: str, status: str, error_code: int | None = None
    ) -> None:
        """Send the signed status callback the provider sends for one of its messages."""
        raise NotImplementedError

    def _control_routes(self) -> list[BaseRoute]:
        async def status(request: Request) -> Response:
            body = await request.json()
            try:
                await self.send_status(
                    request.path_params["message_id"], body["status"], body.get("error_code")
                )
            except LookupError as exc:
                return JSONResponse({"error": str(exc)}, 404)
            return Response(status_code=204)

        async def received(request: Request) -> Response:
            if request.method == "DELETE":
                self.clear()
                return Response(status_code=204)
            return JSONResponse(self.received())

        async def callbacks(request: Request) -> Response:
            return JSONResponse(self.callbacks())

        async def outage(request: Request) -> Response:
            body = await request.json()
            try:
                status = body["status"]
                retry_after = body.get("retry_after")
                self.fail(
                    int(status) if not isinstance(status, list) else [int(s) for s in status],
                    float(body["seconds"]),
                    None if retry_after is None else int(retry_after),
                )
            except (KeyError, ValueError, TypeError) as exc:
                return JSONResponse(
                    {"error": f"send {{status, seconds, retry_after?}}: {exc}"}, 400
                )
            return Response(status_code=204)

        return [
            Route("/_peer/messages/{message_id}/status", status, methods=["POST"]),
            Route("/_peer/requests", received, methods=["GET", "DELETE"]),
            Route("/_peer/callbacks", callbacks, methods=["GET"]),
            Route("/_peer/outage", outage, methods=["POST"]),
        ]

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._client = httpx.AsyncClient(timeout=10)
            self._connections = asyncio.LifoQueue()
            for _ in range(CALLBACK_SENDERS):
                self._connections.put_nowait(CallbackConnection(timeout=10))
            self._backlog = asyncio.Queue()
            for _ in range(CALLBACK_SENDERS):
                task = asyncio.create_task(self._send_callbacks())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            try:
                yield
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                while not self._backlog.empty():  # never sent: closed, not left un-awaited
                    self._backlog.get_nowait().close()
                await self._client.aclose()
                while not self._connections.empty():
                    self._connections.get_nowait().close()
                self._loop = None

        return Starlette(routes=[*self._control_routes(), *self.routes()], lifespan=lifespan)

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve in a background thread; returns once the port listens."""
        if self._server is not None:
            return
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        server = uvicorn.Server(config)
        # Not the main thread: uvicorn installs no signal handlers.
        thread = threading.Thread(target=server.run, name=f"{self.name}-peer", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} peer did not start on port {self.port}")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def describe(self) -> str:
        return f"{self.name} peer: {self.url} (requests at {self.url}/_peer/requests)"

"""What both provider peers share: a Starlette app served by uvicorn in a background thread, the
record of received requests, outages on demand, and signed callbacks sent from the server's loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from recupero_devstack._util import LocalServer

_T = TypeVar("_T")

Record = dict[str, Any]


@dataclass
class Outage:
    """Every API request fails with `status` until `until` (monotonic seconds)."""

    status: int
    until: float


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
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

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

    def fail(self, status: int, seconds: float) -> None:
        """Answer every API request with `status` (500 or 429) for the next `seconds`."""
        if status not in (429, 500, 503):
            raise ValueError(f"outage status must be 429, 500 or 503, not {status}")
        with self._lock:
            self._outage = Outage(status, time.monotonic() + seconds)

    def recover(self) -> None:
        with self._lock:
            self._outage = None

    def _current_outage(self) -> Outage | None:
        with self._lock:
            outage = self._outage
        if outage is not None and time.monotonic() >= outage.until:
            return None
        return outage

    def _keep(self, record: Record) -> None:
        with self._lock:
            self._received.append(record)

    def _find(self, key: str, value: str) -> Record | None:
        with self._lock:
            return next((r for r in self._received if r.get(key) == value), None)

    # --- callbacks --------------------------------------------------------------------------------

    async def _post_callback(
        self, url: str, *, content: bytes, headers: dict[str, str], record: Record
    ) -> httpx.Response | None:
        assert self._client is not None
        try:
            response = await self._client.post(url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            outcome: Record = {**record, "url": url, "status_code": None, "error": str(exc)}
            with self._lock:
                self._callbacks.append(outcome)
            return None
        with self._lock:
            self._callbacks.append(
                {
                    **record,
                    "url": url,
                    "status_code": response.status_code,
                    "response": response.text,
                }
            )
        return response

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        """Callbacks leave after the API answered, as the providers' do."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    def _control_routes(self) -> list[BaseRoute]:
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
                self.fail(int(body["status"]), float(body["seconds"]))
            except (KeyError, ValueError, TypeError) as exc:
                return JSONResponse({"error": f"send {{status, seconds}}: {exc}"}, 400)
            return Response(status_code=204)

        return [
            Route("/_peer/requests", received, methods=["GET", "DELETE"]),
            Route("/_peer/callbacks", callbacks, methods=["GET"]),
            Route("/_peer/outage", outage, methods=["POST"]),
        ]

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._client = httpx.AsyncClient(timeout=10)
            try:
                yield
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await self._client.aclose()
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

"""Wires one service process: database, migrations, producer, outbox relay, consumers, background
workers and the HTTP app with `/healthz`, `/readyz` and `/metrics`. Built once in each service's
`bootstrap()`; shut down gracefully (consumers commit what they processed, the relay drains).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Generic
from uuid import uuid4

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recupero_events import Topic, dead_letter_topic
from recupero_runtime.consumer import Batched, EventConsumer, Handler
from recupero_runtime.db import Repo, ServiceSchema, UnitOfWork, create_engine, upgrade_schema
from recupero_runtime.kafka import Publisher, ensure_topics, kafka_reachable
from recupero_runtime.logging import configure_logging
from recupero_runtime.outbox import OutboxRelay
from recupero_runtime.settings import ServiceSettings

log = structlog.get_logger()

Worker = Callable[[], Awaitable[None]]


class Service(Generic[Repo]):
    def __init__(
        self,
        settings: ServiceSettings,
        schema: ServiceSchema,
        migrations: Path,
        repositories: Callable[[AsyncSession], Repo],
    ) -> None:
        self.settings = settings
        self.schema = schema
        self._repositories = repositories
        self._migrations = migrations
        self.engine = create_engine(
            settings.database_url, settings.database_pool_size, settings.database_pre_ping
        )
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        # aiokafka clients need the running loop, so they are made in start(), not here.
        self._publisher: Publisher | None = None
        self.relay = OutboxRelay(self.sessions, schema, settings.outbox_poll_interval_seconds)
        self._handlers: list[Mapping[str, Handler | Batched]] = []
        self._consumers: list[EventConsumer] = []
        self._workers: dict[str, Worker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer_tasks: list[asyncio.Task[None]] = []

    def unit_of_work(self, correlation_id: str | None = None) -> UnitOfWork[Repo]:
        return UnitOfWork(
            self.sessions,
            self.schema,
            self._repositories,
            source=self.settings.service_name,
            correlation_id=correlation_id,
            on_commit=self.relay.notify,
        )

    def consume(self, handlers: Mapping[str, Handler | Batched]) -> None:
        """Handle these topics in this service's consumer group once started; a topic whose
        handler is `Batched` gets each poll's records in one call and one transaction."""
        self._handlers.append(handlers)

    def add_worker(self, name: str, worker: Worker) -> None:
        """A background loop (scheduler, sweep) that runs until shutdown."""
        self._workers[name] = worker

    async def start(self) -> None:
        configure_logging(self.settings.service_name, self.settings.log_level)
        await self._wait_for_dependencies()
        await upgrade_schema(self.engine, self._migrations, self.schema.name)
        topics = [topic.value for topic in Topic]
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            topics + [dead_letter_topic(topic) for topic in topics],
        )
        publisher = self._publisher = Publisher(self.settings.kafka_bootstrap_servers)
        self._tasks.append(asyncio.create_task(self.relay.run(publisher), name="outbox-relay"))
        self._consumers = [
            EventConsumer(
                name=self.settings.service_name,
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                handlers=handlers,
                unit_of_work=self.unit_of_work,
                dead_letters=publisher,
                max_attempts=self.settings.consumer_max_attempts,
                batch_size=self.settings.consumer_batch_size,
                concurrency=self.settings.consumer_concurrency,
            )
            for handlers in self._handlers
        ]
        for name, worker in self._workers.items():
            self._tasks.append(asyncio.create_task(self._supervise(name, worker), name=name))
        for consumer in self._consumers:
            self._consumer_tasks.append(
                asyncio.create_task(
                    self._supervise(consumer.name, consumer.run), name=consumer.name
                )
            )
        log.info("service_started", port=self.settings.http_port)

    async def _wait_for_dependencies(self) -> None:
        """Services may start before PostgreSQL and Kafka (a process manager starts all at once)."""
        deadline = asyncio.get_running_loop().time() + self.settings.startup_timeout_seconds
        while True:
            checks = await self.readiness()
            if all(value == "ok" for value in checks.values()):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"dependencies not reachable: {checks}")
            log.info("waiting_for_dependencies", **checks)
            await asyncio.sleep(1)

    async def _supervise(self, name: str, worker: Worker) -> None:
        # A crashing loop (consumer, scheduler) is logged and restarted, never silently gone.
        # A consumer that returns has been asked to stop.
        while True:
            try:
                await worker()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker_crashed", worker=name)
                await asyncio.sleep(1)

    async def stop(self) -> None:
        for consumer in self._consumers:
            consumer.stop()
        await asyncio.gather(*self._consumer_tasks, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self.relay.publish_pending(self._publisher)
            await self._publisher.close()
        await self.engine.dispose()
        log.info("service_stopped")

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {exc}"
        try:
            if self._publisher is not None:
                await self._publisher.reachable()
            else:
                await kafka_reachable(self.settings.kafka_bootstrap_servers)
            checks["kafka"] = "ok"
        except Exception as exc:
            checks["kafka"] = f"unreachable: {exc}"
        return checks

    def create_app(self, *routers: APIRouter, title: str, description: str) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
        app.state.service = self
        for router in routers:
            app.include_router(router)

        app.add_middleware(_Correlate, service_name=self.settings.service_name)

        @app.get("/healthz", tags=["operations"])
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/readyz", tags=["operations"])
        async def readyz() -> JSONResponse:
            checks = await self.readiness()
            ready = all(value == "ok" for value in checks.values())
            return JSONResponse(
                {"status": "ready" if ready else "not ready", "checks": checks},
                status_code=200 if ready else 503,
            )

        @app.get("/metrics", tags=["operations"])
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        return app


class _Correlate:
    """Each request's correlation id (`x-correlation-id`, or a new one): on `request.state`,
    bound to its log lines, echoed on the response. A plain ASGI middleware: Starlette's
    `BaseHTTPMiddleware` ran every request in a task group with memory streams, a tenth of the
    CPU of a process that takes provider webhooks."""

    def __init__(self, app: ASGIApp, service_name: str) -> None:
        self.app = app
        self.service_name = service_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = Headers(scope=scope).get("x-correlation-id") or str(uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            service=self.service_name, correlation_id=correlation_id
        )

        async def send_correlated(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-correlation-id"] = correlation_id
            await send(message)

        await self.app(scope, receive, send_correlated)


def serve(app: FastAPI, settings: ServiceSettings, **uvicorn_options: Any) -> None:
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        **uvicorn_options,
    )

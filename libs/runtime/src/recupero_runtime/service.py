"""Wires one service process: database, migrations, producer, outbox relay, consumers, background
workers and the HTTP app with `/healthz`, `/readyz` and `/metrics`. Built once in each service's
`bootstrap()`; shut down gracefully (consumers commit what they processed, the relay drains).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from recupero_events import Topic, dead_letter_topic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.middleware.base import RequestResponseEndpoint

from recupero_runtime.consumer import EventConsumer, Handler
from recupero_runtime.db import ServiceSchema, UnitOfWork, create_engine, upgrade_schema
from recupero_runtime.kafka import create_producer, ensure_topics
from recupero_runtime.logging import configure_logging
from recupero_runtime.outbox import OutboxRelay
from recupero_runtime.settings import ServiceSettings

log = structlog.get_logger()

Worker = Callable[[], Awaitable[None]]


class Service:
    def __init__(self, settings: ServiceSettings, schema: ServiceSchema, migrations: Path) -> None:
        self.settings = settings
        self.schema = schema
        self._migrations = migrations
        self.engine = create_engine(settings.database_url)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        self.producer = create_producer(settings.kafka_bootstrap_servers)
        self.relay = OutboxRelay(
            self.sessions, schema, self.producer, settings.outbox_poll_interval_seconds
        )
        self._consumers: list[EventConsumer] = []
        self._workers: dict[str, Worker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer_tasks: list[asyncio.Task[None]] = []

    def unit_of_work(self, correlation_id: str | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.sessions,
            self.schema,
            source=self.settings.service_name,
            correlation_id=correlation_id,
            on_commit=self.relay.notify,
        )

    def consume(self, handlers: Mapping[str, Handler]) -> None:
        self._consumers.append(
            EventConsumer(
                name=self.settings.service_name,
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                handlers=handlers,
                unit_of_work=self.unit_of_work,
                dead_letters=self.producer,
                max_attempts=self.settings.consumer_max_attempts,
            )
        )

    def add_worker(self, name: str, worker: Worker) -> None:
        """A background loop (scheduler, sweep) that runs until shutdown."""
        self._workers[name] = worker

    async def start(self) -> None:
        configure_logging(self.settings.service_name, self.settings.log_level)
        await upgrade_schema(self.engine, self._migrations, self.schema.name)
        topics = [topic.value for topic in Topic]
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            topics + [dead_letter_topic(topic) for topic in topics],
        )
        await self.producer.start()
        self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        for name, worker in self._workers.items():
            self._tasks.append(asyncio.create_task(self._supervise(name, worker), name=name))
        for consumer in self._consumers:
            self._consumer_tasks.append(asyncio.create_task(consumer.run(), name=consumer.name))
        log.info("service_started", port=self.settings.http_port)

    async def _supervise(self, name: str, worker: Worker) -> None:
        # A crashing loop is logged and restarted, never silently gone.
        while True:
            try:
                await worker()
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
        with contextlib.suppress(Exception):
            await self.relay.publish_pending()
        await self.producer.stop()
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
            await self.producer.client.fetch_all_metadata()
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

        @app.middleware("http")
        async def correlate(request: Request, call_next: RequestResponseEndpoint) -> Response:
            correlation_id = request.headers.get("x-correlation-id") or str(uuid4())
            request.state.correlation_id = correlation_id
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(
                service=self.settings.service_name, correlation_id=correlation_id
            )
            response = await call_next(request)
            response.headers["x-correlation-id"] = correlation_id
            return response

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

"""Session fixtures: a real PostgreSQL and a real Kafka broker for the whole test run.

Started here on free ports, or reused when `RECUPERO_TEST_DATABASE_URL` (a server URL whose user may
create databases) and `RECUPERO_TEST_KAFKA_BOOTSTRAP` point at a running stack.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from recupero_devstack._util import free_port
from recupero_devstack.kafka import KafkaBroker
from recupero_devstack.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"


@pytest.fixture(scope="session")
def database_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("RECUPERO_TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = PostgresServer(tmp_path_factory.mktemp("postgres"), free_port(), fast=True)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("RECUPERO_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), free_port(), free_port(), CACHE)
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


async def create_database(server_url: str) -> str:
    """A new, empty database on the test server; returns its SQLAlchemy URL."""
    url = make_url(server_url)
    name = f"test_{uuid4().hex[:12]}"
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
async def database_url(database_server_url: str) -> str:
    return await create_database(database_server_url)

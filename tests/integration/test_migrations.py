"""Each service's migrations build exactly the tables its code uses: upgrading an empty database
to head leaves nothing for Alembic's autogenerate to add, drop or alter."""

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from recupero_runtime.db import ServiceSchema, create_engine, upgrade_schema

pytestmark = pytest.mark.integration

SERVICES = ["ingest", "segmenter", "orchestrator", "notifier", "payments", "portal_api"]


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_the_models(service: str, database_url: str) -> None:
    package = importlib.import_module(f"recupero_{service}")
    schema: ServiceSchema = importlib.import_module(f"recupero_{service}.adapters.tables").schema
    engine = create_engine(database_url)
    try:
        await upgrade_schema(
            engine, Path(package.__file__ or "").parent / "migrations", schema.name
        )

        def differences(connection: Connection) -> list[object]:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_schemas": True,
                    "include_name": lambda name, kind, _: (
                        name == schema.name if kind == "schema" else name != "alembic_version"
                    ),
                    "compare_type": True,
                },
            )
            return list(compare_metadata(context, schema.metadata))

        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()

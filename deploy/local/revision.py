"""Autogenerates an Alembic revision for one service against a throwaway PostgreSQL.

    uv run python deploy/local/revision.py ingest "add import profiles"

The new file lands in the service's `migrations/versions/`; review it before committing.
"""

import asyncio
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

from recupero_devstack._util import free_port
from recupero_devstack.postgres import PostgresServer
from recupero_runtime.db import ServiceSchema, autogenerate_revision, create_engine, upgrade_schema


def main() -> None:
    service, message = sys.argv[1], sys.argv[2]
    package = "recupero_" + service.replace("-", "_")
    tables = importlib.import_module(f"{package}.adapters.tables")
    schema: ServiceSchema = tables.schema
    migrations = Path(importlib.import_module(package).__file__ or "").parent / "migrations"
    with (
        tempfile.TemporaryDirectory() as tmp,
        PostgresServer(Path(tmp), free_port(), fast=True) as server,
    ):
        # Bring the throwaway database to head first, so the revision holds only the difference.
        async def upgrade() -> None:
            engine = create_engine(server.url)
            await upgrade_schema(engine, migrations, schema.name)
            await engine.dispose()

        asyncio.run(upgrade())
        autogenerate_revision(server.url, migrations, schema.name, message)
    subprocess.run(["ruff", "format", str(migrations / "versions")], check=False)


if __name__ == "__main__":
    main()

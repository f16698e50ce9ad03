from recupero_portal_api.adapters.tables import metadata
from recupero_runtime.migrations import run_migrations

run_migrations(metadata)

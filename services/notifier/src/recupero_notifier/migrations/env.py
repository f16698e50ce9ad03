from recupero_notifier.adapters.tables import metadata
from recupero_runtime.migrations import run_migrations

run_migrations(metadata)

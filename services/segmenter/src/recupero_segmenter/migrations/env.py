from recupero_runtime.migrations import run_migrations
from recupero_segmenter.adapters.tables import metadata

run_migrations(metadata)

"""Wires the payments service."""

from pathlib import Path

from fastapi import FastAPI
from recupero_runtime.service import Service

from recupero_payments.adapters.tables import schema
from recupero_payments.entrypoints.api import router
from recupero_payments.settings import PaymentsSettings


def bootstrap(settings: PaymentsSettings) -> tuple[Service, FastAPI]:
    service = Service(settings, schema, migrations=Path(__file__).parent / "migrations")
    app = service.create_app(
        router,
        title="Recupero payments",
        description="Records debtors' payments and publishes `payment-received`.",
    )
    return service, app

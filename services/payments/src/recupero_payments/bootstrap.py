"""Wires the payments service."""

from pathlib import Path

from fastapi import FastAPI

from recupero_payments.adapters.repository import PaymentsRepository
from recupero_payments.adapters.tables import schema
from recupero_payments.entrypoints.api import router
from recupero_payments.settings import PaymentsSettings
from recupero_runtime.service import Service


def bootstrap(settings: PaymentsSettings) -> tuple[Service[PaymentsRepository], FastAPI]:
    service = Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=PaymentsRepository,
    )
    app = service.create_app(
        router,
        title="Recupero payments",
        description="Records debtors' payments and publishes `payment-received`.",
    )
    return service, app

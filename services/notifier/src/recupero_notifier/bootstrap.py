"""Wires the notifier service: one place builds everything, from settings made at start-up."""

from pathlib import Path

from fastapi import FastAPI

from recupero_events import Topic
from recupero_notifier.adapters.email import EmailSender, SmtpSender
from recupero_notifier.adapters.repository import NotifierRepository
from recupero_notifier.adapters.tables import schema
from recupero_notifier.adapters.templates import JinjaTemplates
from recupero_notifier.entrypoints.events import action_due_handler
from recupero_notifier.settings import NotifierSettings
from recupero_runtime.service import Service


def bootstrap(
    settings: NotifierSettings, sender: EmailSender | None = None
) -> tuple[Service[NotifierRepository], FastAPI]:
    service = Service(
        settings,
        schema,
        migrations=Path(__file__).parent / "migrations",
        repositories=NotifierRepository,
    )
    if sender is None:
        sender = SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.mail_from,
            settings.smtp_timeout_seconds,
        )
    service.consume(
        {
            Topic.ACTION_DUE.value: action_due_handler(
                attempts=service.unit_of_work, sender=sender, templates=JinjaTemplates()
            )
        }
    )
    app = service.create_app(
        title="Recupero notifier",
        description="Carries out due collection actions: renders the template, sends the message "
        "(email over SMTP for now) at most once per action and emits `message-sent`.",
    )
    return service, app

"""In-memory stand-ins for OUR adapters (never for Kafka, PostgreSQL or SQLAlchemy)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar
from uuid import uuid4

from recupero_events import DecodedEvent, EventPayload

Repo = TypeVar("Repo")


@dataclass
class FakeWork(Generic[Repo]):
    """The shape of `recupero_runtime.db.Work`: a repository and the events queued for the outbox."""

    repo: Repo
    published: list[EventPayload] = field(default_factory=list)
    source: str = "recupero/test"

    def publish(self, payload: EventPayload, correlation_id: str | None = None) -> str:
        self.published.append(payload)
        return str(uuid4())

    def take(self) -> list[EventPayload]:
        taken, self.published = self.published, []
        return taken


def delivered(payload: EventPayload) -> DecodedEvent:
    """The event as a consumer receives it from Kafka."""
    return DecodedEvent(
        event_id=str(uuid4()),
        source="recupero/test",
        event_type=payload.event_type,
        time=datetime.now(UTC),
        correlation_id="test",
        payload=payload,
    )

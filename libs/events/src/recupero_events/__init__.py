"""Recupero's published event contract.

Everything a service needs to publish or read an event lives here: topic names, the CloudEvents 1.0
envelope in Kafka binary mode, the payload models and their (de)serialisation. No I/O, no settings,
no business rules: this package imports with pydantic alone.
"""

from recupero_events.codec import (
    DecodedEvent,
    EncodedEvent,
    EventDecodeError,
    cloudevent_headers,
    decode,
    encode,
    event_type_of,
    partition_key,
)
from recupero_events.payloads import (
    PAYLOAD_BY_TOPIC,
    ActionDue,
    Channel,
    CollectionStage,
    ContactDetails,
    DebtDocument,
    DebtImported,
    DebtorAttributes,
    DebtorSegmented,
    DebtRecordsSubmitted,
    DocumentKind,
    EventPayload,
    MessageSent,
    Money,
    PaymentReceived,
    PromiseRegistered,
    SubmittedDocument,
)
from recupero_events.topics import Topic, dead_letter_topic

__all__ = [
    "PAYLOAD_BY_TOPIC",
    "ActionDue",
    "Channel",
    "CollectionStage",
    "ContactDetails",
    "DebtDocument",
    "DebtImported",
    "DebtRecordsSubmitted",
    "DebtorAttributes",
    "DebtorSegmented",
    "DecodedEvent",
    "DocumentKind",
    "EncodedEvent",
    "EventDecodeError",
    "EventPayload",
    "MessageSent",
    "Money",
    "PaymentReceived",
    "PromiseRegistered",
    "SubmittedDocument",
    "Topic",
    "cloudevent_headers",
    "dead_letter_topic",
    "decode",
    "encode",
    "event_type_of",
    "partition_key",
]

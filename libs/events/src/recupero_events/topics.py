"""Kafka topic names: one topic per published event, kebab-case and past tense."""

from enum import StrEnum


class Topic(StrEnum):
    DEBT_IMPORTED = "debt-imported"
    DEBTOR_SEGMENTED = "debtor-segmented"
    ACTION_DUE = "action-due"
    MESSAGE_SENT = "message-sent"
    PROMISE_REGISTERED = "promise-registered"
    PAYMENT_RECEIVED = "payment-received"
    MESSAGE_STATUS_CHANGED = "message-status-changed"
    PROMISE_RESOLVED = "promise-resolved"
    AGENT_TASK_COMPLETED = "agent-task-completed"
    # Inbound: core systems stream their debt records to Recupero on this topic.
    DEBT_RECORDS = "debt-records"


def dead_letter_topic(topic: str) -> str:
    """Where a consumer parks a message it cannot process, so the partition keeps flowing."""
    return f"{topic}.dlq"

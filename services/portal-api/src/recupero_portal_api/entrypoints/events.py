"""Kafka entrypoint: which handler each topic's events go to. The kit's consumer runner decodes
the CloudEvent, dedupes it through the inbox and owns the transaction."""

from collections.abc import Mapping

from recupero_events import Topic
from recupero_portal_api import handlers
from recupero_runtime.consumer import Handler

EVENT_HANDLERS: Mapping[str, Handler] = {
    Topic.DEBT_IMPORTED.value: handlers.record_debt_imported,
    Topic.DEBTOR_SEGMENTED.value: handlers.record_debtor_segmented,
    Topic.ACTION_DUE.value: handlers.record_action_due,
    Topic.MESSAGE_SENT.value: handlers.record_message_sent,
    Topic.PROMISE_REGISTERED.value: handlers.record_promise_registered,
    Topic.PAYMENT_RECEIVED.value: handlers.record_payment_received,
}

"""The one interface every channel adapter implements for the delivery handler."""

from typing import Protocol

from recupero_events import ActionDue
from recupero_notifier.domain.messages import RenderedMessage


class ChannelAdapter(Protocol):
    @property
    def provider(self) -> str:
        """Name published in `message-sent` (`whatsapp-cloud`, `twilio`, `smtp`)."""
        ...

    @property
    def confirmed_by_callback(self) -> bool:
        """True when the provider's status callbacks carry the action id, so an attempt whose
        outcome is unknown is settled by its callback rather than by sending again."""
        ...

    def recipient(self, action: ActionDue) -> str:
        """The address this action goes to; raises when the debtor has none for the channel."""
        ...

    async def send(self, action: ActionDue, rendered: RenderedMessage, session_open: bool) -> str:
        """Hand the message to the provider and return the provider's message id.

        `session_open`: the debtor wrote to us on this channel within the provider's session
        window (WhatsApp's 24 hours), so free text is allowed instead of an approved template.
        Raises the errors of `adapters.providers`.
        """
        ...

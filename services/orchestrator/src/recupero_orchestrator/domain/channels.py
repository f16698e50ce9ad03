"""The channels a strategy step can use, and which of them reach the debtor.

The published `recupero_events.Channel` carries only the channels the notifier can send on today; a
strategy may also plan field visits and legal referrals, which become agents' work instead.
"""

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator

from recupero_events import Channel


class ContactChannel(StrEnum):
    """Every channel a strategy step or a contact rule can name."""

    WHATSAPP = "whatsapp"
    SMS = "sms"
    EMAIL = "email"
    IVR = "ivr"
    LETTER = "letter"
    AGENT_CALL = "agent_call"
    FIELD_VISIT = "field_visit"
    LEGAL_REFERRAL = "legal_referral"


# A legal referral hands the file to a law firm: it does not reach the debtor, so contact hours,
# frequency caps and opt-outs do not apply to it (dispute and hardship holds still do).
CONTACT_CHANNELS = frozenset(ContactChannel) - {ContactChannel.LEGAL_REFERRAL}
CALL_CHANNELS = frozenset({ContactChannel.IVR, ContactChannel.AGENT_CALL})
CHANNEL_NAMES = ", ".join(channel.value for channel in ContactChannel)


def parse_channel(value: Any) -> ContactChannel:
    """Read a channel name, with an error that names the wrong value (documents are typed by people)."""
    if isinstance(value, ContactChannel):
        return value
    try:
        return ContactChannel(value)
    except ValueError:
        raise ValueError(f"unknown channel {value!r} (expected one of: {CHANNEL_NAMES})") from None


ChannelField = Annotated[ContactChannel, BeforeValidator(parse_channel)]


def published_channel(channel: ContactChannel) -> Channel | None:
    """The `action-due` channel for a step, or None when the step is agents' work, not a message."""
    try:
        return Channel(channel.value)
    except ValueError:
        return None

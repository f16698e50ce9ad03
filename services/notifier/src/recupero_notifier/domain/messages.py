"""What a debtor receives for an action: the template's variables and the message per channel.

Pure: no I/O. The adapters render templates and talk to the providers.
"""

from dataclasses import dataclass
from datetime import date
from typing import Self
from uuid import UUID

from recupero_events import ActionDue
from recupero_notifier.domain.money import format_money

MESSAGE_ID_DOMAIN = "recupero.local"
# Mail clients show an unsubscribe button for this header; a "BAJA" sent to it is an opt-out.
LIST_UNSUBSCRIBE = "<mailto:baja@recupero.local?subject=BAJA>"


class UnknownTemplate(LookupError):
    """The action names a template the notifier does not have."""


class NoEmailAddress(ValueError):
    """An email action for a debtor whose contact details have no email address."""


class NoPhoneNumber(ValueError):
    """A WhatsApp, SMS or IVR action for a debtor whose contact details have no phone number."""


def phone_of(action: ActionDue) -> str:
    """The debtor's E.164 number, for the channels that need one."""
    if action.contact.phone is None:
        raise NoPhoneNumber(
            f"action {action.action_id}: debtor {action.debtor_id} has no phone number "
            f"for {action.channel.value}"
        )
    return action.contact.phone


def message_id_for(action_id: UUID) -> str:
    """The email's Message-ID, derived from the action: the idempotency key of the email.

    A resend of the same action carries the same Message-ID, so mailboxes collapse the copies.
    """
    return f"<{action_id}@{MESSAGE_ID_DOMAIN}>"


def format_date(value: date) -> str:
    """Dates as Mexican readers write them: dd/mm/yyyy."""
    return value.strftime("%d/%m/%Y")


@dataclass(frozen=True, slots=True)
class ReminderContext:
    """The variables every reminder template may use, already formatted for the reader."""

    name: str
    amount_due: str
    oldest_due_on: str
    days_past_due: int

    @classmethod
    def for_action(cls, action: ActionDue) -> Self:
        return cls(
            name=action.contact.name,
            amount_due=format_money(action.balance.amount_minor, action.balance.currency),
            oldest_due_on=format_date(action.oldest_due_on),
            days_past_due=action.days_past_due,
        )

    def variables(self) -> dict[str, object]:
        return {
            "name": self.name,
            "amount_due": self.amount_due,
            "oldest_due_on": self.oldest_due_on,
            "days_past_due": self.days_past_due,
        }

    def template_parameters(self) -> list[str]:
        """Body parameters {{1}}, {{2}}, {{3}} of the WhatsApp template approved under the
        action's template name: name, amount due, oldest due date."""
        return [self.name, self.amount_due, self.oldest_due_on]


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """Every part of a template, rendered: each channel takes the parts it needs."""

    subject: str
    text: str
    html: str
    # A few hundred characters: SMS and WhatsApp session text.
    short: str
    # What the IVR reads aloud before asking for a key.
    voice: str


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One email to one debtor, ready for any sender adapter."""

    to_address: str
    to_name: str
    subject: str
    text: str
    html: str
    message_id: str
    language: str
    list_unsubscribe: str = LIST_UNSUBSCRIBE


def _one_line(value: str) -> str:
    return " ".join(value.split())


def email_of(action: ActionDue) -> str:
    if action.contact.email is None:
        raise NoEmailAddress(f"action {action.action_id}: debtor {action.debtor_id} has no email")
    return str(action.contact.email)


def compose_email(action: ActionDue, rendered: RenderedMessage) -> OutgoingEmail:
    return OutgoingEmail(
        to_address=email_of(action),
        # Headers are one line: a line break in a name or subject must not start a new header.
        to_name=_one_line(action.contact.name),
        subject=_one_line(rendered.subject),
        text=rendered.text,
        html=rendered.html,
        message_id=message_id_for(action.action_id),
        language=action.contact.locale,
    )

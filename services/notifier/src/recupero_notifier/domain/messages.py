"""What a debtor receives for an action: the template's variables and the email to send.

Pure: no I/O. The adapters render templates and talk SMTP.
"""

from dataclasses import dataclass
from datetime import date
from typing import Self
from uuid import UUID

from recupero_events import ActionDue
from recupero_notifier.domain.money import format_money

MESSAGE_ID_DOMAIN = "recupero.local"
# Opt-outs are not processed yet, but mail clients show an unsubscribe button for this header.
LIST_UNSUBSCRIBE = "<mailto:baja@recupero.local?subject=BAJA>"


class UnknownTemplate(LookupError):
    """The action names a template the notifier does not have."""


class NoEmailAddress(ValueError):
    """An email action for a debtor whose contact details have no email address."""


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


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


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


def compose_email(action: ActionDue, rendered: RenderedMessage) -> OutgoingEmail:
    if action.contact.email is None:
        raise NoEmailAddress(f"action {action.action_id}: debtor {action.debtor_id} has no email")
    return OutgoingEmail(
        to_address=str(action.contact.email),
        # Headers are one line: a line break in a name or subject must not start a new header.
        to_name=_one_line(action.contact.name),
        subject=_one_line(rendered.subject),
        text=rendered.text,
        html=rendered.html,
        message_id=message_id_for(action.action_id),
        language=action.contact.locale,
    )

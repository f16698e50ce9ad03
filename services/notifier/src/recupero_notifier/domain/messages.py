"""What a debtor receives for an action: the template's variables and the message per channel.

Pure: no I/O. The adapters render templates and talk to the providers.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Self
from uuid import UUID

from recupero_events import ActionDue
from recupero_notifier.domain.chatbot import DebtorFacts, local_today
from recupero_notifier.domain.locales import (
    format_amount,
    format_long_date,
    format_short_date,
    language_of,
)

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


# Every variable a template may use: a template naming anything else is refused at upload.
CONTEXT_VARIABLES: dict[str, str] = {
    "name": "Debtor's full name, as the creditor gave it.",
    "amount_due": "Outstanding balance in the reader's locale, with the ISO code "
    "(es-AR `$12.345,67 ARS`, en-US `$12,345.67 USD`).",
    "oldest_due_on": "Due date of the oldest unpaid document, short with the full year "
    "(es-MX `05/03/2025`, en-US `3/5/2025`).",
    "oldest_due_on_long": "The same date written out (`5 de marzo de 2025`, `March 5, 2025`).",
    "days_past_due": "Days past due of the oldest unpaid document (a number).",
    "payment_link": "Where the debtor pays (`RECUPERO_PAYMENT_LINK_URL` filled in).",
    "today": "The day the message is written in the debtor's time zone, written out "
    "(letters are dated with it).",
    "debtor_id": "The creditor's reference for the debtor (customer number).",
    "locale": "The reader's locale (`es-AR`), e.g. for `<html lang=...>`.",
}


@dataclass(frozen=True, slots=True)
class ReminderContext:
    """The variables every template may use (`CONTEXT_VARIABLES`), already formatted for the
    reader's locale."""

    name: str
    amount_due: str
    oldest_due_on: str
    oldest_due_on_long: str
    days_past_due: int
    payment_link: str
    today: str
    debtor_id: str
    locale: str

    @classmethod
    def build(
        cls,
        *,
        locale: str,
        name: str,
        debtor_id: str,
        balance_minor: int,
        currency: str,
        oldest_due_on: date,
        days_past_due: int,
        payment_link: str,
        today: date,
    ) -> Self:
        return cls(
            name=name,
            amount_due=format_amount(balance_minor, currency, locale),
            oldest_due_on=format_short_date(oldest_due_on, locale),
            oldest_due_on_long=format_long_date(oldest_due_on, locale),
            days_past_due=days_past_due,
            payment_link=payment_link,
            today=format_long_date(today, locale),
            debtor_id=debtor_id,
            locale=locale,
        )

    @classmethod
    def for_action(cls, action: ActionDue, payment_link: str = "") -> Self:
        """The action's debtor in their locale; `today` is the day the action was scheduled for
        in the debtor's time zone, so a re-rendered letter keeps its date."""
        return cls.build(
            locale=action.contact.locale,
            name=action.contact.name,
            debtor_id=action.debtor_id,
            balance_minor=action.balance.amount_minor,
            currency=action.balance.currency,
            oldest_due_on=action.oldest_due_on,
            days_past_due=action.days_past_due,
            payment_link=payment_link,
            today=local_today(action.scheduled_for, action.contact.time_zone),
        )

    @classmethod
    def for_debtor(
        cls, debtor_id: str, facts: DebtorFacts, locale: str, payment_link: str, now: datetime
    ) -> Self:
        """A debtor the notifier knows (`debt-imported` less payments), as of `now`: the oldest
        document that still owes money gives the due date and the days past due."""
        today = local_today(now, facts.time_zone)
        owing = [document.due_on for document in facts.documents if document.amount_minor > 0]
        oldest = min(owing, default=today)
        return cls.build(
            locale=locale,
            name=facts.name,
            debtor_id=debtor_id,
            balance_minor=facts.balance_minor,
            currency=facts.currency,
            oldest_due_on=oldest,
            days_past_due=(today - oldest).days,
            payment_link=payment_link,
            today=today,
        )

    @classmethod
    def sample(cls, locale: str, today: date) -> Self:
        """A made-up debtor, to preview a template and to try one out when it is uploaded."""
        return cls.build(
            locale=locale,
            name="Ana Pérez",
            debtor_id="C-000123",
            balance_minor=1_234_567,
            currency="USD" if language_of(locale) == "en" else "MXN",
            oldest_due_on=date(2025, 3, 5),
            days_past_due=15,
            payment_link="https://pagos.example.com/C-000123",
            today=today,
        )

    def variables(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in CONTEXT_VARIABLES}

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
    # The body of a printed letter (carta documento); None for a template without one.
    letter: str | None = None


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

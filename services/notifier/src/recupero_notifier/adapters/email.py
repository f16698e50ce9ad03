"""Email over SMTP (aiosmtplib), behind the small `EmailSender` protocol the handlers use.

The Message-ID is set by the caller and derived from the action id: it is the email's idempotency
key. SMTP has no other: a server that accepted a message cannot be asked "did you already get this
one?". So if the process dies after the server accepted the message and before the notifier
committed `sent`, the redelivered action sends the message again with the SAME Message-ID, and
mailboxes collapse messages with identical Message-IDs. That is the honest limit of SMTP.
"""

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Protocol

import aiosmtplib

from recupero_events import ActionDue
from recupero_notifier.adapters.providers import (
    OutcomeUnknown,
    ProviderRefused,
    ProviderUnavailable,
)
from recupero_notifier.domain.messages import (
    OutgoingEmail,
    RenderedMessage,
    compose_email,
    email_of,
)

PROVIDER = "smtp"


class EmailSender(Protocol):
    async def send(self, email: OutgoingEmail) -> None:
        """Hand the email to the provider; return once it accepted it, raise otherwise."""
        ...


class TemporarySmtpFailure(ProviderUnavailable):
    """A 4xx reply: the server asks us to try again later, so the consumer retries with backoff
    instead of dead-lettering."""


def build_message(email: OutgoingEmail, mail_from: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = Address(display_name=email.to_name, addr_spec=email.to_address)
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = email.message_id
    message["List-Unsubscribe"] = email.list_unsubscribe
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    # After the parts: making the message multipart moves Content-* headers into the first part.
    message["Content-Language"] = email.language
    return message


class SmtpSender:
    def __init__(self, host: str, port: int, mail_from: str, timeout_seconds: float) -> None:
        self._host = host
        self._port = port
        self._mail_from = mail_from
        self._envelope_from = parseaddr(mail_from)[1]
        self._timeout = timeout_seconds

    async def send(self, email: OutgoingEmail) -> None:
        try:
            await aiosmtplib.send(
                build_message(email, self._mail_from),
                sender=self._envelope_from,
                recipients=[email.to_address],
                hostname=self._host,
                port=self._port,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(_is_temporary(refusal.code) for refusal in exc.recipients):
                raise TemporarySmtpFailure(f"recipient deferred: {exc}") from exc
            raise ProviderRefused(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if _is_temporary(exc.code):
                raise TemporarySmtpFailure(f"SMTP {exc.code}: {exc.message}") from exc
            raise ProviderRefused(f"SMTP {exc.code}: {exc.message}") from exc
        except aiosmtplib.SMTPConnectError as exc:
            # Nothing was sent: parked and tried again, like any provider that is down.
            raise ProviderUnavailable(f"SMTP server unreachable: {exc}") from exc
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
            # Possibly after the server took the message: a resend carries the same Message-ID.
            raise OutcomeUnknown(f"SMTP connection lost: {exc}") from exc


def _is_temporary(code: int) -> bool:
    return 400 <= code < 500


class EmailChannel:
    """The email channel: the message composed from the template, handed to an `EmailSender`.

    No status callbacks: an attempt whose outcome is unknown is sent again with the same
    Message-ID, which mailboxes collapse."""

    provider = PROVIDER
    confirmed_by_callback = False

    def __init__(self, sender: EmailSender) -> None:
        self._sender = sender

    def recipient(self, action: ActionDue) -> str:
        return email_of(action)

    async def send(self, action: ActionDue, rendered: RenderedMessage, session_open: bool) -> str:
        email = compose_email(action, rendered)
        await self._sender.send(email)
        return email.message_id

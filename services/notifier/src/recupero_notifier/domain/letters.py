"""A printed letter's life after it is stored: printed, posted with a tracking number, then
delivered or returned by the post office. Pure: which moves are allowed and what each publishes."""

from enum import StrEnum

from babel import Locale, UnknownLocaleError

from recupero_events import MessageStatus, PostalAddress

# Why a letter action fails when the debtor has no postal address (the orchestrator falls back).
NO_POSTAL_ADDRESS = "no_postal_address"


class LetterStatus(StrEnum):
    PENDING_PRINT = "pending_print"
    PRINTED = "printed"
    POSTED = "posted"
    DELIVERED = "delivered"
    RETURNED = "returned"


_ORDER = list(LetterStatus)
_FINAL = {LetterStatus.DELIVERED, LetterStatus.RETURNED}

# What the orchestrator hears: a delivered letter is a delivered message, a returned one failed
# (so a fallback channel is tried). Printing and posting are the print queue's own business.
PUBLISHED_STATUS = {
    LetterStatus.DELIVERED: MessageStatus.DELIVERED,
    LetterStatus.RETURNED: MessageStatus.FAILED,
}


class LetterUpdateRefused(ValueError):
    """A status or tracking number a letter in its current state cannot take."""


def next_state(
    current: LetterStatus,
    current_tracking: str | None,
    wanted: LetterStatus,
    tracking_number: str | None,
) -> tuple[LetterStatus, str | None]:
    """The letter's status and tracking number after an update; refuses going backwards, leaving
    a final status, and posting without a tracking number."""
    if current in _FINAL and wanted != current:
        raise LetterUpdateRefused(f"the letter is already {current.value}")
    if _ORDER.index(wanted) < _ORDER.index(current):
        raise LetterUpdateRefused(f"a {current.value} letter cannot go back to {wanted.value}")
    if current_tracking is not None and tracking_number not in (None, current_tracking):
        raise LetterUpdateRefused(
            f"the letter already has tracking number {current_tracking}; it never changes"
        )
    tracking = current_tracking or tracking_number
    if wanted in (LetterStatus.POSTED, *_FINAL) and tracking is None:
        raise LetterUpdateRefused(f"a {wanted.value} letter needs its tracking_number")
    return wanted, tracking


def address_block(name: str, address: PostalAddress, locale: str) -> list[str]:
    """The lines printed in the envelope's window: the debtor, the street lines, the postal code
    and city, the region, and the country's name (in the debtor's language, upper case, as
    international post wants it last)."""
    lines = [name, *address.street_lines]
    lines.append(" ".join(part for part in (address.postal_code, address.city) if part))
    if address.region:
        lines.append(address.region)
    try:
        language = Locale.parse(locale, sep="-")
    except (UnknownLocaleError, ValueError):
        language = Locale("es")
    lines.append(language.territories.get(address.country, address.country).upper())
    return [" ".join(line.split()) for line in lines if line.strip()]

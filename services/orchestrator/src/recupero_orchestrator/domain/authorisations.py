"""Channels a debtor authorised the creditor to use. Colombia's Ley 2300 de 2023 allows contact only
on those (`co.authorised-channels`); elsewhere they are recorded and not required.

They arrive two ways: through the API (an agent records what the debtor signed or said, with the
evidence) and with the portfolio, as a custom attribute of the import. This module reads the
import's attribute and decides what an import may change: an import states what the creditor's
records say, so it replaces what earlier imports granted, but it never brings back a channel the
debtor revoked through the API (the creditor's file may not know yet), nor touches what was granted
through the API.
"""

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from recupero_orchestrator.domain.channels import CONTACT_CHANNELS, ContactChannel

# The custom attribute names (matched ignoring case, accents, spaces and hyphens) an import profile
# can keep the debtor's authorised channels under: a Colombian creditor's header is often Spanish.
IMPORT_ATTRIBUTE_NAMES = frozenset({"authorised_channels", "canales_autorizados"})
# Channels in the attribute's cell: `whatsapp;sms;email`, also with `,` `|` or spaces between.
_SEPARATORS = re.compile(r"[;,|\s]+")


class AuthorisationSource(StrEnum):
    API = "api"
    IMPORT = "import"


class AuthorisationChange(StrEnum):
    AUTHORISED = "authorised"
    REVOKED = "revoked"


def not_authorisable(channel: ContactChannel) -> str | None:
    """Why a channel cannot be authorised, or None when it can: only channels that reach the debtor
    need the debtor's consent."""
    if channel in CONTACT_CHANNELS:
        return None
    return f"{channel.value} does not contact the debtor; it needs no authorisation"


@dataclass(frozen=True)
class ImportedChannels:
    """What an import's attribute says: the channels it lists, and the words it had that name none."""

    attribute: str
    channels: frozenset[ContactChannel]
    unknown: tuple[str, ...]


def _attribute_key(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[\s\-]+", "_", plain.strip().lower())


def imported_channels(custom: Mapping[str, str]) -> ImportedChannels | None:
    """The authorised channels an import's custom attributes carry; None when it carries none (the
    import then changes nothing). An empty cell says the debtor authorised nothing."""
    attribute = next(
        (name for name in custom if _attribute_key(name) in IMPORT_ATTRIBUTE_NAMES), None
    )
    if attribute is None:
        return None
    channels: set[ContactChannel] = set()
    unknown: list[str] = []
    for word in _SEPARATORS.split(custom[attribute].strip()):
        if not word:
            continue
        try:
            channel = ContactChannel(_attribute_key(word))
        except ValueError:
            unknown.append(word)
            continue
        if not_authorisable(channel) is None:
            channels.add(channel)
        else:
            unknown.append(word)
    return ImportedChannels(attribute, frozenset(channels), tuple(unknown))


@dataclass(frozen=True)
class ImportChanges:
    grant: frozenset[ContactChannel]
    revoke: frozenset[ContactChannel]
    # Listed by the import, but revoked by the debtor through the API: left revoked.
    kept_revoked: frozenset[ContactChannel]


def import_changes(
    imported: frozenset[ContactChannel],
    current: Mapping[ContactChannel, AuthorisationSource],
    revoked_by_debtor: Iterable[ContactChannel],
) -> ImportChanges:
    """What an import listing `imported` changes, given the channels authorised now (and how) and
    those whose latest change was a revocation through the API."""
    blocked = frozenset(revoked_by_debtor) & imported
    return ImportChanges(
        grant=frozenset(imported - set(current) - blocked),
        revoke=frozenset(
            channel
            for channel, source in current.items()
            if source is AuthorisationSource.IMPORT and channel not in imported
        ),
        kept_revoked=blocked,
    )

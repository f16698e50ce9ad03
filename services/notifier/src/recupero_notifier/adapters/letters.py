"""Printed letters (carta documento): the `letter` channel renders the template's `letter.txt`
into a PDF and stores it in PostgreSQL for the print shop, one per action. The print queue is our
"provider": a stored letter is accepted (`message-sent`), and what the post office reports later
(delivered, returned) arrives through the letters API (`entrypoints.api`)."""

import unicodedata
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from fpdf import FPDF
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recupero_events import ActionDue
from recupero_notifier.adapters.providers import ProviderRefused
from recupero_notifier.adapters.tables import letters
from recupero_notifier.domain.letters import NO_POSTAL_ADDRESS, LetterStatus, address_block
from recupero_notifier.domain.messages import RenderedMessage

PROVIDER = "letter"
# The PDF's core fonts cover Windows-1252 (Spanish, English, “quotes”, €); anything else is
# transliterated, never an error that would keep a letter from being printed.
PDF_ENCODING = "windows-1252"


def _printable(text: str) -> str:
    def char(c: str) -> str:
        try:
            c.encode(PDF_ENCODING)
            return c
        except UnicodeEncodeError:
            plain = (
                unicodedata.normalize("NFKD", c).encode(PDF_ENCODING, "ignore").decode(PDF_ENCODING)
            )
            return plain or "?"

    return "".join(char(c) for c in text)


# Where the address shows through a window envelope (DL/C5 with the window on the left, as DIN
# 5008 and ISO 269 place it): 20 mm from the left edge, 50 mm from the top, 85 x 40 mm.
ADDRESS_WINDOW = (20.0, 50.0, 85.0, 40.0)
# The letter's text starts below the window.
TEXT_TOP = 100.0


def letter_pdf(text: str, title: str, address: list[str] | None = None) -> bytes:
    """An A4 page (or more) with the letter's text, ready to print and fold; `address` (the
    lines of `domain.letters.address_block`) is printed in the envelope's window."""
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = PDF_ENCODING
    pdf.set_title(_printable(title))
    pdf.set_author("Recupero")
    pdf.set_margins(25, 25, 25)
    pdf.set_auto_page_break(auto=True, margin=25)
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    if address:
        left, top, width, _ = ADDRESS_WINDOW
        pdf.set_xy(left, top)
        for line in address:
            # A line longer than the window wraps inside it rather than running past its edge.
            pdf.set_x(left)
            pdf.multi_cell(width, 5, _printable(line), new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(max(TEXT_TOP, pdf.get_y() + 10))
    pdf.multi_cell(0, 5.5, _printable(text.strip()), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def letter_id_for(action_id: UUID) -> UUID:
    """The letter of an action: the same id on every attempt."""
    return uuid5(NAMESPACE_URL, f"recupero:letter:{action_id}")


class Letter(BaseModel):
    """A letter as the print queue lists it (its PDF is fetched on its own)."""

    model_config = ConfigDict(frozen=True)

    letter_id: UUID
    tenant_id: str
    debtor_id: str
    action_id: UUID
    template: str
    locale: str
    recipient: str
    status: LetterStatus
    tracking_number: str | None
    created_at: datetime
    status_changed_at: datetime


_LETTER_COLUMNS = tuple(column for column in letters.c if column.name != "pdf")


class LetterQueries:
    """Mixed into `NotifierRepository`: the letter statements, every one scoped by tenant."""

    session: AsyncSession

    async def store_letter(
        self, action: ActionDue, recipient: str, pdf: bytes, at: datetime
    ) -> UUID:
        """Store the action's letter, or find the one an earlier attempt stored."""
        letter_id = letter_id_for(action.action_id)
        await self.session.execute(
            insert(letters)
            .values(
                letter_id=letter_id,
                tenant_id=action.tenant_id,
                debtor_id=action.debtor_id,
                action_id=action.action_id,
                template=action.template,
                locale=action.contact.locale,
                recipient=recipient,
                status=LetterStatus.PENDING_PRINT.value,
                pdf=pdf,
                created_at=at,
                status_changed_at=at,
            )
            .on_conflict_do_nothing()
        )
        return letter_id

    async def letters_of(self, tenant_id: str, status: LetterStatus | None) -> list[Letter]:
        """Oldest first: the print shop works through them in order."""
        statement = select(*_LETTER_COLUMNS).where(letters.c.tenant_id == tenant_id)
        if status is not None:
            statement = statement.where(letters.c.status == status.value)
        rows = await self.session.execute(statement.order_by(letters.c.created_at))
        return [_letter(row) for row in rows]

    async def letter(
        self, tenant_id: str, letter_id: UUID, for_update: bool = False
    ) -> Letter | None:
        statement = select(*_LETTER_COLUMNS).where(
            letters.c.tenant_id == tenant_id, letters.c.letter_id == letter_id
        )
        if for_update:
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else _letter(row)

    async def letter_pdf(self, tenant_id: str, letter_id: UUID) -> bytes | None:
        pdf: bytes | None = await self.session.scalar(
            select(letters.c.pdf).where(
                letters.c.tenant_id == tenant_id, letters.c.letter_id == letter_id
            )
        )
        return pdf

    async def update_letter(
        self,
        tenant_id: str,
        letter_id: UUID,
        status: LetterStatus,
        tracking_number: str | None,
        at: datetime,
    ) -> None:
        await self.session.execute(
            update(letters)
            .where(letters.c.tenant_id == tenant_id, letters.c.letter_id == letter_id)
            .values(status=status.value, tracking_number=tracking_number, status_changed_at=at)
        )


def _letter(row: Row[Any]) -> Letter:
    return Letter.model_validate(dict(row._mapping))


class LetterStore(Protocol):
    async def store_letter(
        self, action: ActionDue, recipient: str, pdf: bytes, at: datetime
    ) -> UUID: ...


class LetterUnit(Protocol):
    @property
    def repo(self) -> LetterStore: ...

    async def commit(self) -> None: ...


LetterUnits = Callable[[], AbstractAsyncContextManager[LetterUnit]]


class LetterChannel:
    """The `letter` channel adapter: the print queue is the provider, the letter id its
    message id."""

    provider = PROVIDER
    # No callback settles a letter: a repeated attempt finds the stored letter instead.
    confirmed_by_callback = False

    def __init__(self, units: LetterUnits, clock: Callable[[], datetime]) -> None:
        self._units = units
        self._clock = clock

    def recipient(self, action: ActionDue) -> str:
        # The print queue lists the debtor, the creditor's reference and where it goes.
        address = action.contact.postal_address
        if address is None:
            return f"{action.contact.name} ({action.debtor_id})"
        block = address_block(action.contact.name, address, action.contact.locale)
        return f"{block[0]} ({action.debtor_id}), {', '.join(block[1:])}"

    async def send(self, action: ActionDue, rendered: RenderedMessage, session_open: bool) -> str:
        address = action.contact.postal_address
        if address is None:
            # Nothing is printed: the orchestrator hears `failed` and falls back to a channel
            # that can reach the debtor.
            raise ProviderRefused(
                f"{NO_POSTAL_ADDRESS}: debtor {action.debtor_id} has no postal address to print "
                "the letter for"
            )
        if rendered.letter is None:
            raise ProviderRefused(
                f"template {action.template!r} has no letter.txt: it cannot be printed"
            )
        pdf = letter_pdf(
            rendered.letter,
            rendered.subject,
            address_block(action.contact.name, address, action.contact.locale),
        )
        async with self._units() as uow:
            letter_id = await uow.repo.store_letter(
                action, self.recipient(action), pdf, self._clock()
            )
            await uow.commit()
        return str(letter_id)

"""The WhatsApp self-service bot: a debtor who writes gets a menu in Spanish and can see the debt,
promise to pay, report a payment, ask for a payment link or talk to an agent.

Pure: `reply(state, text, facts, now)` returns the next state, the texts to send and the effects
(typed values the handler turns into events). The state is a small JSON-able value the notifier
stores per conversation, so a restart continues where the debtor was. Opt-out keywords never reach
the bot: the inbound handler settles them first.
"""

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recupero_notifier.domain.money import DEFAULT_EXPONENT, MINOR_UNIT_EXPONENT, format_money

# Documents listed in "see my debt"; a long list would not fit a WhatsApp message.
MAX_DOCUMENTS_SHOWN = 10


class Step(StrEnum):
    """Where the conversation is: what the bot expects the debtor to write next."""

    MENU = "menu"
    PROMISE_AMOUNT = "promise_amount"
    PROMISE_DATE = "promise_date"
    CONFIRM = "confirm"
    PAYMENT_REPORT = "payment_report"
    # An agent owns the conversation: the bot stays silent.
    HANDED_TO_AGENT = "handed_to_agent"


@dataclass(frozen=True, slots=True)
class ChatState:
    """A conversation's state, stored as JSON between messages."""

    step: Step = Step.MENU
    # The promise being built: amount first, then the date, then the debtor confirms.
    amount_minor: int | None = None
    promised_on: date | None = None
    # False until the debtor has seen the menu once (the first message gets a greeting).
    greeted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step.value,
            "amount_minor": self.amount_minor,
            "promised_on": None if self.promised_on is None else self.promised_on.isoformat(),
            "greeted": self.greeted,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "ChatState":
        promised_on = value.get("promised_on")
        return cls(
            step=Step(value.get("step", Step.MENU.value)),
            amount_minor=value.get("amount_minor"),
            promised_on=None if promised_on is None else date.fromisoformat(promised_on),
            greeted=bool(value.get("greeted", False)),
        )


@dataclass(frozen=True, slots=True)
class DocumentFact:
    document_id: str
    due_on: date
    amount_minor: int


@dataclass(frozen=True, slots=True)
class DebtorFacts:
    """What the bot knows about the debtor who writes (the notifier's own copy)."""

    name: str
    balance_minor: int
    currency: str
    time_zone: str
    documents: tuple[DocumentFact, ...] = ()
    # The tenant's policy: a promise may not be further away than this.
    max_promise_days: int = 30


@dataclass(frozen=True, slots=True)
class RegisterPromise:
    amount_minor: int
    currency: str
    promised_on: date


@dataclass(frozen=True, slots=True)
class HandToAgent:
    reason: str


@dataclass(frozen=True, slots=True)
class SendPaymentLink:
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class ReportPayment:
    text: str


Effect = RegisterPromise | HandToAgent | SendPaymentLink | ReportPayment


class Turn(NamedTuple):
    state: ChatState
    texts: list[str]
    effects: list[Effect]


MENU = (
    "Escriba el número de una opción:\n"
    "1. Ver mi deuda\n"
    "2. Prometer un pago\n"
    "3. Informar un pago ya realizado\n"
    "4. Recibir un enlace de pago\n"
    "5. Hablar con un asesor"
)
BACK_TO_MENU = "Escriba 0 para volver al menú."
NOT_AN_OPTION = "No entendí su respuesta."
AMOUNT_FORMAT = "Escriba solo el monto, por ejemplo 1500,50."
AMOUNT_NOT_POSITIVE = "El monto debe ser mayor que cero."
DATE_FORMAT = "Escriba la fecha como DD/MM/AAAA, por ejemplo 15/08/2026."
DATE_IN_PAST = "La fecha no puede ser anterior a hoy."
PROMISE_DECLINED = "No registramos ninguna promesa."
HANDED = "Un asesor continuará esta conversación a la brevedad. Gracias por escribirnos."
LINK_SENT = "Le enviaremos el enlace para pagar {amount} en un momento."
PAYMENT_REPORT_PROMPT = (
    "Cuéntenos en un mensaje cuándo pagó, cuánto y por qué medio (por ejemplo, "
    "transferencia del 10/08 por 1500,00, referencia 12345)."
)
PAYMENT_REPORT_THANKS = (
    "Gracias. Un asesor verificará su pago y actualizaremos su saldo cuando se confirme."
)
YES = frozenset({"SI", "SÍ", "S", "1", "CONFIRMO", "OK", "YES"})
NO = frozenset({"NO", "N", "2", "CANCELAR"})
BACK = frozenset({"0", "MENU", "MENÚ", "INICIO", "HOLA"})


def _word(text: str) -> str:
    return " ".join(re.sub(r"[^\wáéíóúÁÉÍÓÚ]+", " ", text).upper().split())


def _exponent(currency: str) -> int:
    return MINOR_UNIT_EXPONENT.get(currency, DEFAULT_EXPONENT)


def parse_amount(text: str, currency: str) -> int | None:
    """Minor units from "1.500,50", "1,500.50", "1500.50", "$1500", "1500 MXN"; None when
    unreadable. The last separator followed by at most the currency's decimals is the decimal
    mark; any other separator groups thousands (so "1.500" is one thousand five hundred)."""
    cleaned = re.sub(r"[\s$]|[A-Za-z]{3}$|^[A-Za-z]{3}", "", text.strip())
    cleaned = cleaned.removeprefix("$")
    if not re.fullmatch(r"\d[\d.,]*", cleaned) or cleaned[-1] in ".,":
        return None
    exponent = _exponent(currency)
    whole, decimals = cleaned, ""
    last = max(cleaned.rfind("."), cleaned.rfind(","))
    if last >= 0:
        tail = cleaned[last + 1 :]
        separators = cleaned[:last]
        mark = cleaned[last]
        # One mark with 1..exponent digits after it, and not also used as a thousands group.
        if len(tail) <= exponent and mark not in separators and len(tail) != 3:
            whole, decimals = separators, tail
    groups = re.split(r"[.,]", whole)
    if len(groups) > 1 and (not 1 <= len(groups[0]) <= 3 or any(len(g) != 3 for g in groups[1:])):
        return None
    units = int("".join(groups))
    minor: int = units * 10**exponent + int(decimals.ljust(exponent, "0") or "0")
    return minor


def parse_date(text: str, today: date) -> date | None:
    """ "15/08/2026", "15-08-2026", "15/08" (this year, or the next if already past),
    "2026-08-15", "hoy", "mañana"; None when unreadable."""
    word = _word(text)
    if word == "HOY":
        return today
    if word in ("MAÑANA", "MANANA"):
        return today + timedelta(days=1)
    try:
        if match := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text.strip()):
            return date(int(match[1]), int(match[2]), int(match[3]))
        if match := re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{2}|\d{4}))?", text.strip()):
            day, month = int(match[1]), int(match[2])
            if match[3] is None:
                candidate = date(today.year, month, day)
                return candidate if candidate >= today else date(today.year + 1, month, day)
            year = int(match[3])
            return date(year + 2000 if year < 100 else year, month, day)
    except ValueError:
        return None
    return None


def local_today(now: datetime, time_zone: str) -> date:
    try:
        return now.astimezone(ZoneInfo(time_zone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        # A zone the creditor misspelt must not break the conversation; UTC is a day off at most.
        return now.astimezone(UTC).date()


def _day(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def promise_window(facts: DebtorFacts, now: datetime) -> tuple[date, date]:
    """The dates a promise may name under the tenant's policy: from the debtor's today (in their
    time zone) to `max_promise_days` later."""
    today = local_today(now, facts.time_zone)
    return today, today + timedelta(days=facts.max_promise_days)


def promise_of_the_balance(facts: DebtorFacts, now: datetime) -> RegisterPromise | None:
    """A promise made without stating amount or date (a key pressed on a call): the whole
    balance by the latest date the policy allows. None when nothing is owed."""
    if facts.balance_minor <= 0:
        return None
    _, latest = promise_window(facts, now)
    return RegisterPromise(facts.balance_minor, facts.currency, latest)


def _menu(state: ChatState, facts: DebtorFacts, prefix: list[str] | None = None) -> Turn:
    texts = list(prefix or [])
    if not state.greeted:
        texts.append(
            f"Hola, {facts.name.split()[0]}. Soy el asistente de cobranza. "
            f"Su saldo pendiente es {format_money(facts.balance_minor, facts.currency)}."
        )
    texts.append(MENU)
    return Turn(ChatState(step=Step.MENU, greeted=True), texts, [])


def _debt(facts: DebtorFacts) -> str:
    lines = [f"Saldo pendiente: {format_money(facts.balance_minor, facts.currency)}."]
    if facts.documents:
        lines.append("Documentos:")
        shown = sorted(facts.documents, key=lambda d: (d.due_on, d.document_id))
        for document in shown[:MAX_DOCUMENTS_SHOWN]:
            amount = format_money(document.amount_minor, facts.currency)
            lines.append(f"- {document.document_id}: {amount}, vence {_day(document.due_on)}")
        if len(shown) > MAX_DOCUMENTS_SHOWN:
            lines.append(f"... y {len(shown) - MAX_DOCUMENTS_SHOWN} más.")
    lines.append(BACK_TO_MENU)
    return "\n".join(lines)


def _choose(state: ChatState, choice: str, facts: DebtorFacts) -> Turn:
    balance = format_money(facts.balance_minor, facts.currency)
    if choice == "1":
        return Turn(state, [_debt(facts)], [])
    if choice == "2":
        if facts.balance_minor <= 0:
            return Turn(state, ["Usted no tiene saldo pendiente. " + BACK_TO_MENU], [])
        return Turn(
            replace(state, step=Step.PROMISE_AMOUNT),
            [f"¿Cuánto pagará? Su saldo es {balance}. {AMOUNT_FORMAT}"],
            [],
        )
    if choice == "3":
        return Turn(replace(state, step=Step.PAYMENT_REPORT), [PAYMENT_REPORT_PROMPT], [])
    if choice == "4":
        return Turn(
            state,
            [LINK_SENT.format(amount=balance)],
            [SendPaymentLink(facts.balance_minor, facts.currency)],
        )
    if choice == "5":
        return Turn(
            ChatState(step=Step.HANDED_TO_AGENT, greeted=True),
            [HANDED],
            [HandToAgent("el deudor pidió hablar con un asesor por WhatsApp")],
        )
    return _menu(state, facts, [NOT_AN_OPTION])


def reply(state: ChatState | None, text: str, facts: DebtorFacts, now: datetime) -> Turn:
    """What the bot answers to `text` from a debtor in `state` (None: a new conversation)."""
    state = state or ChatState()
    if state.step is Step.HANDED_TO_AGENT:
        return Turn(state, [], [])
    word = _word(text)
    if not state.greeted or (word in BACK and state.step is not Step.PAYMENT_REPORT):
        return _menu(state, facts)
    today, latest = promise_window(facts, now)

    if state.step is Step.MENU:
        return _choose(state, word, facts)

    if state.step is Step.PROMISE_AMOUNT:
        amount = parse_amount(text, facts.currency)
        balance = format_money(facts.balance_minor, facts.currency)
        if amount is None:
            return Turn(state, [f"No entendí el monto. {AMOUNT_FORMAT}"], [])
        if amount <= 0:
            return Turn(state, [f"{AMOUNT_NOT_POSITIVE} {AMOUNT_FORMAT}"], [])
        if amount > facts.balance_minor:
            return Turn(
                state,
                [f"El monto no puede ser mayor que su saldo de {balance}. {AMOUNT_FORMAT}"],
                [],
            )
        return Turn(
            replace(state, step=Step.PROMISE_DATE, amount_minor=amount),
            [f"¿Qué día pagará? Puede elegir hasta el {_day(latest)}. {DATE_FORMAT}"],
            [],
        )

    if state.step is Step.PROMISE_DATE:
        promised_on = parse_date(text, today)
        if promised_on is None:
            return Turn(state, [f"No entendí la fecha. {DATE_FORMAT}"], [])
        if promised_on < today:
            return Turn(state, [f"{DATE_IN_PAST} {DATE_FORMAT}"], [])
        if promised_on > latest:
            return Turn(
                state, [f"La fecha no puede ser posterior al {_day(latest)}. {DATE_FORMAT}"], []
            )
        assert state.amount_minor is not None
        amount_text = format_money(state.amount_minor, facts.currency)
        return Turn(
            replace(state, step=Step.CONFIRM, promised_on=promised_on),
            [
                f"¿Confirma que pagará {amount_text} a más tardar el {_day(promised_on)}? "
                "Responda SI o NO."
            ],
            [],
        )

    if state.step is Step.CONFIRM:
        assert state.amount_minor is not None and state.promised_on is not None
        if word in YES:
            amount_text = format_money(state.amount_minor, facts.currency)
            return _menu(
                state,
                facts,
                [
                    f"Listo: registramos su promesa de pagar {amount_text} a más tardar el "
                    f"{_day(state.promised_on)}. Gracias."
                ],
            )._replace(
                effects=[RegisterPromise(state.amount_minor, facts.currency, state.promised_on)]
            )
        if word in NO:
            return _menu(state, facts, [PROMISE_DECLINED])
        return Turn(state, ["Responda SI para confirmar o NO para cancelar."], [])

    # Step.PAYMENT_REPORT: whatever the debtor writes is the report an agent will verify.
    return _menu(state, facts, [PAYMENT_REPORT_THANKS])._replace(
        effects=[ReportPayment(text.strip())]
    )

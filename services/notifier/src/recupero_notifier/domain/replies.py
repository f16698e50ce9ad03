"""What a debtor's reply means: an opt-out keyword on any channel, a key pressed on a call.

Pure: no I/O.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from babel.dates import format_date

# Words debtors use to stop messages, in the tenants' countries and in English (Reg F).
OPT_OUT_KEYWORDS = frozenset(
    {"BAJA", "DARME DE BAJA", "STOP", "NO MOLESTAR", "CANCELAR", "UNSUBSCRIBE", "ALTO"}
)


def _normalised(text: str) -> str:
    # Accents, case, punctuation and repeated spaces do not change the meaning of "¡Baja!".
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^A-Za-z ]+", " ", plain).upper().split())


def is_opt_out(text: str) -> bool:
    """True when the whole reply is an opt-out keyword ("baja", "STOP.", "No molestar")."""
    return _normalised(text) in OPT_OUT_KEYWORDS


class IvrChoice(StrEnum):
    """The menu a collection call reads: 1 promise to pay, 2 talk to an agent."""

    PROMISE_TO_PAY = "promise_to_pay"
    TALK_TO_AGENT = "talk_to_agent"


IVR_MENU = {"1": IvrChoice.PROMISE_TO_PAY, "2": IvrChoice.TALK_TO_AGENT}


def ivr_choice(digits: str) -> IvrChoice | None:
    """The option a pressed key selects; None for a key the menu does not offer."""
    return IVR_MENU.get(digits.strip())


@dataclass(frozen=True)
class IvrTexts:
    """What a collection call says around the template's voice text, in one form of address."""

    prompt: str
    no_answer: str
    agent: str
    invalid: str
    promise: str  # {amount} and {spoken_date}


USTED = IvrTexts(
    prompt="Para prometer un pago, marque 1. Para hablar con un asesor, marque 2.",
    no_answer="No recibimos su respuesta. Gracias por su atención, hasta luego.",
    agent="Gracias. Un asesor se comunicará con usted a la brevedad. Hasta luego.",
    invalid="Opción no válida. Un asesor se comunicará con usted. Hasta luego.",
    promise="Gracias. Registramos su promesa de pagar {amount} a más tardar el {spoken_date}. "
    "Le enviaremos los datos para pagar. Hasta luego.",
)
# Argentines are spoken to with vos, as the es-AR templates write to them.
VOS = IvrTexts(
    prompt="Para prometer un pago, marcá 1. Para hablar con un asesor, marcá 2.",
    no_answer="No recibimos tu respuesta. Gracias por tu atención, hasta luego.",
    agent="Gracias. Un asesor se va a comunicar con vos a la brevedad. Hasta luego.",
    invalid="Opción no válida. Un asesor se va a comunicar con vos. Hasta luego.",
    promise="Gracias. Registramos tu promesa de pagar {amount} a más tardar el {spoken_date}. "
    "Te vamos a enviar los datos para pagar. Hasta luego.",
)


def ivr_texts(locale: str) -> IvrTexts:
    """The call's texts in the form of address the debtor's locale uses."""
    return VOS if locale == "es-AR" else USTED


def ivr_promise_confirmation(amount: str, promised_on: date, locale: str) -> str:
    """What the caller hears after pressing 1: the promise as registered. Read aloud,
    "15 de agosto de 2026" is clearer than "15/08/2026"."""
    spoken_date = format_date(promised_on, format="long", locale="es_MX")
    return ivr_texts(locale).promise.format(amount=amount, spoken_date=spoken_date)

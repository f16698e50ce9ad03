"""What a debtor's reply means: an opt-out keyword on any channel, a key pressed on a call.

Pure: no I/O.
"""

import re
import unicodedata
from enum import StrEnum

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


IVR_PROMPT = "Para prometer un pago, marque 1. Para hablar con un asesor, marque 2."
IVR_NO_ANSWER = "No recibimos su respuesta. Gracias por su atención, hasta luego."
IVR_CONFIRMATION = {
    IvrChoice.PROMISE_TO_PAY: "Gracias. Registramos su intención de pago; le enviaremos los "
    "datos para pagar. Hasta luego.",
    IvrChoice.TALK_TO_AGENT: "Gracias. Un asesor se comunicará con usted a la brevedad. "
    "Hasta luego.",
}
IVR_INVALID = "Opción no válida. Un asesor se comunicará con usted. Hasta luego."

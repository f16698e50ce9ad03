"""The WhatsApp bot's conversation, as a debtor drives it: pure, no I/O."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from recupero_notifier.domain.chatbot import (
    ChatState,
    DebtorFacts,
    DocumentFact,
    HandToAgent,
    RegisterPromise,
    ReportPayment,
    SendPaymentLink,
    Step,
    Turn,
    parse_amount,
    parse_date,
    promise_of_the_balance,
    reply,
)
from recupero_notifier.domain.replies import ivr_promise_confirmation

# 10:00 in Mexico City on 2026-08-10.
NOW = datetime(2026, 8, 10, 16, 0, tzinfo=UTC)
FACTS = DebtorFacts(
    name="Ana Pérez",
    balance_minor=1_234_567,
    currency="MXN",
    time_zone="America/Mexico_City",
    documents=(
        DocumentFact("FC-0002", date(2026, 7, 5), 234_567),
        DocumentFact("FC-0001", date(2026, 6, 5), 1_000_000),
    ),
    max_promise_days=30,
)


def talk(*texts: str, state: ChatState | None = None) -> Turn:
    turn = Turn(state or ChatState(), [], [])
    for text in texts:
        turn = reply(turn.state, text, FACTS, NOW)
    return turn


def test_first_message_greets_by_name_with_the_balance_and_the_menu() -> None:
    turn = reply(None, "Hola", FACTS, NOW)

    assert turn.state.step is Step.MENU
    assert "Hola, Ana" in turn.texts[0] and "$12,345.67 MXN" in turn.texts[0]
    assert "2. Prometer un pago" in turn.texts[-1] and "5. Hablar con un asesor" in turn.texts[-1]
    assert turn.effects == []


def test_see_my_debt_lists_balance_and_documents_oldest_first() -> None:
    turn = talk("Hola", "1")

    (text,) = turn.texts
    assert "Saldo pendiente: $12,345.67 MXN" in text
    assert text.index("FC-0001") < text.index("FC-0002")
    assert "vence 05/06/2026" in text
    assert turn.state.step is Step.MENU


def test_a_promise_from_amount_to_confirmation_registers_it() -> None:
    turn = talk("Hola", "2", "1.500,50", "20/08/2026")
    assert turn.state.step is Step.CONFIRM
    assert "$1,500.50 MXN" in turn.texts[0] and "20/08/2026" in turn.texts[0]

    confirmed = reply(turn.state, "Sí", FACTS, NOW)

    assert confirmed.effects == [RegisterPromise(150_050, "MXN", date(2026, 8, 20))]
    assert "registramos su promesa" in confirmed.texts[0]
    assert confirmed.state == ChatState(step=Step.MENU, greeted=True)


def test_declining_the_confirmation_registers_nothing() -> None:
    turn = talk("Hola", "2", "1500", "mañana", "no")

    assert turn.effects == []
    assert turn.texts[0] == "No registramos ninguna promesa."
    assert turn.state.step is Step.MENU


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("0,00", "El monto debe ser mayor que cero."),
        ("20.000", "El monto no puede ser mayor que su saldo de $12,345.67 MXN."),
        ("mucho", "No entendí el monto."),
        ("-100", "No entendí el monto."),
    ],
)
def test_an_invalid_amount_is_explained_and_asked_again(text: str, error: str) -> None:
    turn = talk("Hola", "2", text)

    assert turn.texts[0].startswith(error)
    assert turn.state.step is Step.PROMISE_AMOUNT
    assert turn.effects == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("09/08/2026", "La fecha no puede ser anterior a hoy."),
        ("10/09/2026", "La fecha no puede ser posterior al 09/09/2026."),
        ("31/02/2026", "No entendí la fecha."),
        ("pronto", "No entendí la fecha."),
    ],
)
def test_an_invalid_date_is_explained_and_asked_again(text: str, error: str) -> None:
    turn = talk("Hola", "2", "1500", text)

    assert turn.texts[0].startswith(error)
    assert turn.state.step is Step.PROMISE_DATE
    assert turn.state.amount_minor == 150_000


def test_the_latest_date_allowed_is_the_tenants_limit() -> None:
    turn = talk("Hola", "2", "1500", "09/09/2026")

    assert turn.state.step is Step.CONFIRM
    assert turn.state.promised_on == date(2026, 9, 9)


def test_report_a_payment_passes_the_debtors_words_on() -> None:
    turn = talk("Hola", "3", "Pagué 1500 el 8/8 por transferencia, ref 123")

    assert turn.effects == [ReportPayment("Pagué 1500 el 8/8 por transferencia, ref 123")]
    assert turn.state.step is Step.MENU


def test_payment_link_for_the_balance() -> None:
    turn = talk("Hola", "4")

    assert turn.effects == [SendPaymentLink(1_234_567, "MXN")]


def test_talk_to_an_agent_hands_off_and_the_bot_falls_silent() -> None:
    turn = talk("Hola", "5")

    assert turn.state.step is Step.HANDED_TO_AGENT
    assert len(turn.effects) == 1 and isinstance(turn.effects[0], HandToAgent)
    assert "asesor" in turn.texts[0]
    for text in ("Hola", "1", "0", "2"):
        later = reply(turn.state, text, FACTS, NOW)
        assert later == Turn(turn.state, [], [])


def test_an_unknown_option_repeats_the_menu() -> None:
    turn = talk("Hola", "7")

    assert turn.texts[0] == "No entendí su respuesta."
    assert "1. Ver mi deuda" in turn.texts[1]


def test_zero_goes_back_to_the_menu_mid_promise() -> None:
    turn = talk("Hola", "2", "1500", "0")

    assert turn.state == ChatState(step=Step.MENU, greeted=True)


def test_state_survives_json() -> None:
    state = talk("Hola", "2", "1500", "20/08/2026").state

    assert ChatState.from_json(state.to_json()) == state


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1.500,50", "MXN", 150_050),
        ("1500.50", "MXN", 150_050),
        ("1,500.50", "MXN", 150_050),
        ("$1.500", "MXN", 150_000),
        ("1500,5", "MXN", 150_050),
        ("1500 MXN", "MXN", 150_000),
        ("1.234.567", "CLP", 1_234_567),
        ("1500,5", "CLP", None),
        ("15.00.0", "MXN", None),
        ("12,3456", "MXN", None),
    ],
)
def test_amounts_in_the_styles_debtors_write(text: str, currency: str, minor: int | None) -> None:
    assert parse_amount(text, currency) == minor


def test_dates_in_the_styles_debtors_write() -> None:
    today = date(2026, 8, 10)
    assert parse_date("15/08/2026", today) == date(2026, 8, 15)
    assert parse_date("15-8-26", today) == date(2026, 8, 15)
    assert parse_date("2026-08-15", today) == date(2026, 8, 15)
    assert parse_date("15/08", today) == date(2026, 8, 15)
    assert parse_date("05/01", today) == date(2027, 1, 5)
    assert parse_date("Hoy", today) == today


def test_a_key_pressed_on_a_call_promises_the_balance_by_the_policys_last_day() -> None:
    # 22:30 on 2026-08-10 in Mexico City is already the 11th in UTC: the debtor's today counts.
    late_evening = datetime(2026, 8, 11, 4, 30, tzinfo=UTC)
    assert promise_of_the_balance(FACTS, late_evening) == RegisterPromise(
        1_234_567, "MXN", date(2026, 9, 9)
    )
    assert promise_of_the_balance(replace(FACTS, balance_minor=0), NOW) is None
    spoken = ivr_promise_confirmation("$12,345.67 MXN", date(2026, 9, 9), "es-MX")
    assert "su promesa de pagar $12,345.67 MXN a más tardar el 9 de septiembre de 2026" in spoken
    spoken = ivr_promise_confirmation("$ 12.345,67", date(2026, 9, 9), "es-AR")
    assert "tu promesa de pagar $ 12.345,67 a más tardar el 9 de septiembre de 2026" in spoken

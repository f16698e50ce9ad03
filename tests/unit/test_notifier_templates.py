"""Templates without I/O: money and dates as each locale writes them, the shipped templates in
every locale, what an upload is refused for (part, line, variable, a suggestion), the sandbox,
the letters' life cycle and the PDF a letter becomes."""

import io
import re
from datetime import UTC, date, datetime

import pypdf
import pytest

from recupero_events import (
    ActionDue,
    Channel,
    ContactDetails,
    MessageStatus,
    Money,
    PostalAddress,
)
from recupero_notifier.adapters.letters import letter_pdf
from recupero_notifier.adapters.templates import (
    PARTS,
    JinjaTemplates,
    TemplateSource,
    problems_in,
    render_source,
)
from recupero_notifier.adapters.twilio import twiml
from recupero_notifier.domain.chatbot import DebtorFacts, DocumentFact
from recupero_notifier.domain.letters import (
    PUBLISHED_STATUS,
    LetterStatus,
    LetterUpdateRefused,
    address_block,
    next_state,
)
from recupero_notifier.domain.locales import LOCALES, lookup_order, template_key, tenant_keys
from recupero_notifier.domain.messages import ReminderContext

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 23)

# What a reader in each locale expects for 12,345.67 of the local currency (CLP has no cents)
# and for 5 March 2025.
LOCALE_FORMATS = [
    ("es-MX", 1_234_567, "MXN", "$12,345.67 MXN", "05/03/2025", "5 de marzo de 2025"),
    ("es-AR", 1_234_567, "ARS", "$12.345,67 ARS", "5/3/2025", "5 de marzo de 2025"),
    ("es-CO", 1_234_567, "COP", "$12.345,67 COP", "5/03/2025", "5 de marzo de 2025"),
    ("es-PE", 1_234_567, "PEN", "S/\xa012,345.67 PEN", "5/03/2025", "5 de marzo de 2025"),
    ("es-CL", 1_234_567, "CLP", "$1.234.567 CLP", "05-03-2025", "5 de marzo de 2025"),
    ("en-US", 1_234_567, "USD", "$12,345.67 USD", "3/5/2025", "March 5, 2025"),
]


def action(locale: str, amount_minor: int, currency: str, template: str) -> ActionDue:
    return ActionDue(
        tenant_id="demo-bank",
        debtor_id="C-000123",
        action_id="6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b",
        channel=Channel.EMAIL,
        template=template,
        strategy="default/1",
        # 02:00 UTC on the 21st is still the 20th in Mexico City: the letter is dated the 20th.
        scheduled_for=datetime(2025, 3, 21, 2, 0, tzinfo=UTC),
        contact=ContactDetails(
            name="Ana Pérez",
            email="ana@example.com",
            country="MX",
            time_zone="America/Mexico_City",
            locale=locale,
        ),
        balance=Money(amount_minor=amount_minor, currency=currency),
        days_past_due=15,
        oldest_due_on=date(2025, 3, 5),
    )


@pytest.fixture(scope="module")
def templates() -> JinjaTemplates:
    return JinjaTemplates("https://pagos.example.com/{tenant_id}/{debtor_id}")


@pytest.mark.parametrize(
    ("locale", "amount_minor", "currency", "amount", "short_date", "long_date"), LOCALE_FORMATS
)
@pytest.mark.parametrize("template", ["first-reminder", "second-reminder", "formal-letter"])
def test_every_locale_reads_its_own_money_and_dates(
    templates: JinjaTemplates,
    template: str,
    locale: str,
    amount_minor: int,
    currency: str,
    amount: str,
    short_date: str,
    long_date: str,
) -> None:
    due = action(locale, amount_minor, currency, template)
    context = ReminderContext.for_action(due, templates.payment_link("demo-bank", "C-000123"))

    assert (context.amount_due, context.oldest_due_on) == (amount, short_date)
    assert context.oldest_due_on_long == long_date
    rendered = templates.render(template, context, locale)
    assert amount in rendered.subject
    for part in (rendered.text, rendered.html):
        assert "Ana Pérez" in part
        assert amount in part
        assert "https://pagos.example.com/demo-bank/C-000123" in part
    assert f'<html lang="{locale}">' in rendered.html
    assert amount in rendered.short and amount in rendered.voice
    if template == "formal-letter":
        assert rendered.letter is not None
        assert long_date in rendered.letter
        assert ("March 20, 2025" if locale == "en-US" else "20 de marzo de 2025") in rendered.letter
    else:
        assert rendered.letter is None


def test_english_and_spanish_defaults_are_written_in_their_language(
    templates: JinjaTemplates,
) -> None:
    english = templates.render(
        "first-reminder",
        ReminderContext.for_action(action("en-US", 1_234_567, "USD", "first-reminder")),
        "en-US",
    )
    spanish = templates.render(
        "first-reminder",
        ReminderContext.for_action(action("es-CO", 1_234_567, "COP", "first-reminder")),
        "es-CO",
    )
    assert english.subject.startswith("Payment reminder")
    assert spanish.subject.startswith("Recordatorio de pago")


# How Argentines write to a debtor (voseo) and the tú and usted forms of the same words, which an
# Argentine reads as a Mexican or Spanish letter.
VOSEO = ("tenés", "podés", "pagá", "respondé", "comunicate", "pagaste", "ignorá")
TU_OR_USTED = (
    r"\btienes\b",
    r"\bpuedes\b",
    r"\bcomunícate\b",
    r"\bresponde\b",
    r"\bignora\b",
    r"\busted\b",
    r"\bsu\b",
    r"\ble\b",
    r"\bpuede\b",
    r"\bresponda\b",
    r"\bpague\b",
    r"\bignore\b",
    r"\bcomuníquese\b",
    r"\brealizó\b",
    r"\badeudo\b",
)


def _every_part(templates: JinjaTemplates, locale: str, currency: str) -> str:
    """Every part of every shipped template as a debtor in `locale` reads it, overdue and not."""
    texts = []
    for name in sorted(templates.names):
        overdue = action(locale, 1_234_567, currency, name)
        for due in (overdue, overdue.model_copy(update={"days_past_due": -3})):
            rendered = templates.render(name, ReminderContext.for_action(due), locale)
            texts += [rendered.subject, rendered.text, rendered.html, rendered.short]
            texts += [rendered.voice, rendered.letter or ""]
    return "\n".join(texts)


def _every_call(templates: JinjaTemplates, locale: str, currency: str) -> str:
    """The TwiML of a collection call for each shipped template."""
    calls = []
    for name in sorted(templates.names):
        due = action(locale, 1_234_567, currency, name)
        rendered = templates.render(name, ReminderContext.for_action(due), locale)
        calls.append(twiml(due, rendered, "https://notifier.example.com/webhooks/twilio/gather"))
    return "\n".join(calls)


def test_argentine_debtors_are_written_to_with_vos(templates: JinjaTemplates) -> None:
    argentine = _every_part(templates, "es-AR", "ARS")
    mexican = _every_part(templates, "es-MX", "MXN")

    for form in VOSEO:
        assert re.search(rf"\b{form}\b", argentine, re.IGNORECASE), form
        assert not re.search(rf"\b{form}\b", mexican, re.IGNORECASE), form
    found = [form for form in TU_OR_USTED if re.search(form, argentine, re.IGNORECASE)]
    assert found == []
    # The call reads the menu around the voice text in the same form.
    call = _every_call(templates, "es-AR", "ARS")
    assert "marcá 1" in call and "tu respuesta" in call
    assert not re.search(r"\bmarque\b|\bsu\b", call)
    assert "marque 1" in _every_call(templates, "es-MX", "MXN")
    # Mexican debtors keep usted: the es-AR text is not theirs.
    assert re.search(r"\busted\b|\bsu cuenta\b", mexican)
    for name in templates.names:
        source = templates.shipped(name, "es-AR")
        assert source is not None and source.key == "es-AR", name


def test_lookup_goes_from_locale_to_language_to_the_default() -> None:
    assert tenant_keys("es-AR") == ("es-AR", "es")
    assert lookup_order("es-AR") == ("es-AR", "es", "es-MX")
    assert lookup_order("pt-BR") == ("pt-BR", "pt", "es-MX", "es")
    assert template_key("ES-ar") == "es-AR"
    with pytest.raises(ValueError, match="unsupported locale 'fr-FR'"):
        template_key("fr-FR")


def complete(**overrides: str) -> dict[str, str]:
    parts = {
        "subject.txt": "Saldo {{ amount_due }}",
        "body.txt": "Hola {{ name }}",
        "body.html": "<p>Hola {{ name }}</p>",
        "short.txt": "Hola {{ name }}",
        "voice.txt": "Hola {{ name }}",
    }
    return {**parts, **overrides}


def test_a_complete_template_has_no_problems() -> None:
    assert problems_in(complete(**{"letter.txt": "{{ today }}\n{{ name }}"}), TODAY) == []


def test_a_variable_the_context_lacks_is_named_with_its_part_line_and_a_suggestion() -> None:
    html = "<p>\nEstimado(a)\n{{ nmae }}: su saldo es {{ amount_due }}</p>"

    [problem] = problems_in(complete(**{"body.html": html}), TODAY)

    assert (problem.part, problem.line, problem.variable) == ("body.html", 3, "nmae")
    assert problem.did_you_mean == "name"
    assert str(problem) == (
        "body.html line 3: 'nmae' is not a variable templates can use; did you mean 'name'?"
    )


def test_a_variable_nothing_resembles_lists_what_is_available() -> None:
    [problem] = problems_in(complete(**{"short.txt": "{{ saldo_total_con_intereses }}"}), TODAY)

    assert problem.did_you_mean is None
    assert "available: amount_due, days_past_due" in problem.message


def test_variables_the_template_defines_itself_are_not_problems() -> None:
    body = "{% set saludo = 'Hola' %}{% for letra in name %}{{ letra }}{% endfor %} {{ saludo }}"
    assert problems_in(complete(**{"body.txt": body}), TODAY) == []


def test_syntax_errors_unknown_filters_and_parts_are_located() -> None:
    problems = problems_in(
        {
            **complete(**{"subject.txt": "ok\n{% if name %}sin cierre"}),
            "voice.txt": "{{ name | gritar }}",
            "fax.txt": "?",
        },
        TODAY,
    )
    by_part = {problem.part: problem for problem in problems}

    assert by_part["subject.txt"].line == 2
    assert "endif" in by_part["subject.txt"].message
    assert "gritar" in by_part["voice.txt"].message
    assert by_part["fax.txt"].message.startswith("unknown part")


def test_a_missing_part_is_a_problem() -> None:
    parts = complete()
    del parts["voice.txt"]

    [problem] = problems_in(parts, TODAY)

    assert problem.part == "voice.txt" and problem.message.startswith("missing")


def test_what_only_rendering_shows_is_caught_at_upload() -> None:
    [problem] = problems_in(complete(**{"short.txt": "{{ name.first }}"}), TODAY)

    assert problem.part == "short.txt"
    assert "first" in problem.message


def test_a_template_cannot_reach_python_internals() -> None:
    sneaky = "{{ name.__class__.__mro__[1].__subclasses__() }}"

    [problem] = problems_in(complete(**{"body.txt": sneaky}), TODAY)

    assert problem.part == "body.txt"


def test_a_debtor_the_notifier_knows_is_previewed_from_the_oldest_open_document() -> None:
    facts = DebtorFacts(
        name="Luis Gómez",
        balance_minor=50_000,
        currency="ARS",
        time_zone="America/Argentina/Buenos_Aires",
        documents=(
            DocumentFact("NC-1", date(2026, 1, 1), -10_000),
            DocumentFact("FC-2", date(2026, 11, 3), 60_000),
        ),
    )
    context = ReminderContext.for_debtor(
        "A-7", facts, "es-AR", "https://pay/A-7", datetime(2026, 11, 23, 12, tzinfo=UTC)
    )

    assert context.amount_due == "$500,00 ARS"
    assert context.oldest_due_on == "3/11/2026"
    assert context.days_past_due == 20
    source = TemplateSource(
        "x", "es-AR", complete(**{"body.txt": "{{ name }}: {{ payment_link }}"})
    )
    assert render_source(source, context).text == "Luis Gómez: https://pay/A-7"


def test_letters_move_forward_and_post_with_a_tracking_number() -> None:
    assert next_state(LetterStatus.PENDING_PRINT, None, LetterStatus.PRINTED, None) == (
        LetterStatus.PRINTED,
        None,
    )
    with pytest.raises(LetterUpdateRefused, match="needs its tracking_number"):
        next_state(LetterStatus.PRINTED, None, LetterStatus.POSTED, None)
    assert next_state(LetterStatus.PRINTED, None, LetterStatus.POSTED, "CD1") == (
        LetterStatus.POSTED,
        "CD1",
    )
    assert next_state(LetterStatus.POSTED, "CD1", LetterStatus.DELIVERED, None) == (
        LetterStatus.DELIVERED,
        "CD1",
    )
    with pytest.raises(LetterUpdateRefused, match="cannot go back"):
        next_state(LetterStatus.POSTED, "CD1", LetterStatus.PRINTED, None)
    with pytest.raises(LetterUpdateRefused, match="already delivered"):
        next_state(LetterStatus.DELIVERED, "CD1", LetterStatus.RETURNED, None)
    with pytest.raises(LetterUpdateRefused, match="never changes"):
        next_state(LetterStatus.POSTED, "CD1", LetterStatus.DELIVERED, "CD2")
    assert PUBLISHED_STATUS == {
        LetterStatus.DELIVERED: MessageStatus.DELIVERED,
        LetterStatus.RETURNED: MessageStatus.FAILED,
    }


def test_a_letter_is_a_pdf_whose_text_reads_back() -> None:
    text = "20 de marzo de 2025\n\nSr./Sra. Ana Pérez\n“Intimación” – saldo $12.345,67 ARS ✓"

    pdf = letter_pdf(text, "Carta documento")

    reader = pypdf.PdfReader(io.BytesIO(pdf))
    extracted = reader.pages[0].extract_text()
    assert "Sr./Sra. Ana Pérez" in extracted
    assert "“Intimación” – saldo $12.345,67 ARS" in extracted
    assert reader.metadata is not None and reader.metadata.title == "Carta documento"


def test_a_letter_is_addressed_in_the_envelopes_window() -> None:
    address = PostalAddress(
        street_lines=["Av. Insurgentes Sur 1602,  int. 4", "Col. Crédito Constructor"],
        city="Ciudad de México",
        region="CDMX",
        postal_code="03940",
        country="MX",
    )
    block = address_block("Ana Pérez", address, "es-MX")
    assert block == [
        "Ana Pérez",
        "Av. Insurgentes Sur 1602, int. 4",
        "Col. Crédito Constructor",
        "03940 Ciudad de México",
        "CDMX",
        "MÉXICO",
    ]
    # The country is named in the debtor's language; no region or postal code, no empty line.
    assert address_block(
        "Ann Lee", address.model_copy(update={"region": None, "postal_code": None}), "en-US"
    )[-2:] == ["Ciudad de México", "MEXICO"]

    pdf = letter_pdf("20 de marzo de 2025\n\nEstimada Ana:", "Carta documento", block)

    page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
    found: dict[str, float] = {}
    page.extract_text(visitor_text=lambda text, cm, tm, *_: found.setdefault(text.strip(), tm[5]))
    a4_height_pt, mm = 841.89, 72 / 25.4
    # In the window (50 to 90 mm from the top, on the left), and the letter below it.
    assert 50 * mm < a4_height_pt - found["Ana Pérez"] < 90 * mm
    assert 50 * mm < a4_height_pt - found["MÉXICO"] < 90 * mm
    assert a4_height_pt - found["20 de marzo de 2025"] > 95 * mm


def test_every_shipped_template_passes_its_own_upload_checks(templates: JinjaTemplates) -> None:
    for name in templates.names:
        for locale in LOCALES:
            source = templates.shipped(name, locale)
            assert source is not None
            assert set(source.parts) <= set(PARTS)
            assert problems_in(source.parts, TODAY) == [], (name, locale)

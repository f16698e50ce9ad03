"""Notifier without I/O: money as a debtor reads it, the Spanish templates, the email itself, the
provider requests and signatures, and the delivery handler over in-memory fakes of our repository,
units of work and email sender.
"""

import hmac
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from types import TracebackType
from typing import Any, Self
from uuid import UUID, uuid4

import pytest

from recupero_events import (
    ActionDue,
    Channel,
    ContactDetails,
    EventPayload,
    MessageSent,
    MessageStatus,
    MessageStatusChanged,
    Money,
)
from recupero_notifier.adapters import twilio, whatsapp
from recupero_notifier.adapters.email import EmailChannel, build_message
from recupero_notifier.adapters.http import ProviderClient
from recupero_notifier.adapters.providers import (
    ProviderRefused,
    ProviderUnavailable,
    TokenBucket,
)
from recupero_notifier.adapters.repository import Delivery, DeliveryOutlook, DeliveryState
from recupero_notifier.adapters.templates import JinjaTemplates, TemplateSource
from recupero_notifier.domain.messages import (
    NoEmailAddress,
    OutgoingEmail,
    ReminderContext,
    UnknownTemplate,
    compose_email,
    message_id_for,
)
from recupero_notifier.domain.money import format_money
from recupero_notifier.domain.replies import IvrChoice, is_opt_out, ivr_choice
from recupero_notifier.domain.retries import ParkingBackoff
from recupero_notifier.handlers import carry_out_actions

pytestmark = pytest.mark.unit

ACTION_ID = UUID("6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b")
MAIL_FROM = "Recupero Cobranza <cobranza@recupero.local>"


def action(
    *,
    channel: Channel = Channel.EMAIL,
    name: str = "Ana Pérez",
    email: str | None = "ana@example.com",
    template: str = "first-reminder",
    amount_minor: int = 1_234_567,
    currency: str = "MXN",
    days_past_due: int = 15,
) -> ActionDue:
    return ActionDue(
        tenant_id="demo-bank",
        debtor_id="C-000123",
        action_id=ACTION_ID,
        channel=channel,
        template=template,
        strategy="default/1",
        scheduled_for=datetime(2025, 3, 20, 16, 0, tzinfo=UTC),
        contact=ContactDetails(
            name=name,
            email=email,
            phone="+5215512345678",
            country="MX",
            time_zone="America/Mexico_City",
        ),
        balance=Money(amount_minor=amount_minor, currency=currency),
        days_past_due=days_past_due,
        oldest_due_on=date(2025, 3, 5),
    )


@pytest.fixture(scope="module")
def templates() -> JinjaTemplates:
    return JinjaTemplates()


@pytest.mark.parametrize(
    ("amount_minor", "currency", "expected"),
    [
        (1_234_567, "MXN", "$12,345.67 MXN"),
        (5, "MXN", "$0.05 MXN"),
        (100_000_000, "MXN", "$1,000,000.00 MXN"),
        (1_234_567, "CLP", "$1,234,567 CLP"),
        (1_234_567, "COP", "$12,345.67 COP"),
        (2_500_000, "PYG", "₲2,500,000 PYG"),
        (-4_550, "MXN", "-$45.50 MXN"),
        (0, "CLP", "$0 CLP"),
    ],
)
def test_money_is_formatted_with_the_currency_exponent(
    amount_minor: int, currency: str, expected: str
) -> None:
    assert format_money(amount_minor, currency) == expected


def test_first_reminder_is_personalised_in_spanish(templates: JinjaTemplates) -> None:
    rendered = templates.render("first-reminder", ReminderContext.for_action(action()))

    assert rendered.subject == "Recordatorio de pago: saldo pendiente de $12,345.67 MXN"
    for part in (rendered.text, rendered.html):
        assert "Ana Pérez" in part
        assert "$12,345.67 MXN" in part
        assert "05/03/2025" in part
        assert "15 días de atraso" in part
        assert "responder a este correo" in part
    assert '<html lang="es-MX">' in rendered.html


def test_second_reminder_renders_with_clp_amount(templates: JinjaTemplates) -> None:
    rendered = templates.render(
        "second-reminder",
        ReminderContext.for_action(action(amount_minor=350_000, currency="CLP", days_past_due=1)),
    )

    assert rendered.subject == "Segundo aviso: su saldo de $350,000 CLP sigue pendiente"
    assert "1 día de atraso" in rendered.text
    assert "responda a este correo" in rendered.text


def test_reminder_before_the_due_date_does_not_speak_of_arrears(
    templates: JinjaTemplates,
) -> None:
    rendered = templates.render(
        "first-reminder", ReminderContext.for_action(action(days_past_due=0))
    )

    assert "vence el 05/03/2025" in rendered.text
    assert "atraso" not in rendered.text


def test_html_escapes_the_debtors_name_but_text_keeps_it(templates: JinjaTemplates) -> None:
    rendered = templates.render(
        "first-reminder", ReminderContext.for_action(action(name="Ana <b>Pérez</b> & Cía"))
    )

    assert "Ana &lt;b&gt;Pérez&lt;/b&gt; &amp; Cía" in rendered.html
    assert "<b>Pérez</b>" not in rendered.html
    assert "Ana <b>Pérez</b> & Cía" in rendered.text


def test_unknown_template_raises(templates: JinjaTemplates) -> None:
    with pytest.raises(UnknownTemplate, match="no-such-template"):
        templates.render("no-such-template", ReminderContext.for_action(action()))
    with pytest.raises(UnknownTemplate):
        templates.render("../first-reminder", ReminderContext.for_action(action()))


def test_email_carries_deterministic_message_id_and_unsubscribe_header(
    templates: JinjaTemplates,
) -> None:
    due = action()
    email = compose_email(due, templates.render(due.template, ReminderContext.for_action(due)))
    raw = build_message(email, MAIL_FROM).as_bytes()
    parsed = message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)

    assert message_id_for(ACTION_ID) == "<6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b@recupero.local>"
    assert parsed["Message-ID"] == message_id_for(ACTION_ID)
    assert parsed["To"] == "Ana Pérez <ana@example.com>"
    assert parsed["From"] == MAIL_FROM
    assert parsed["Subject"] == "Recordatorio de pago: saldo pendiente de $12,345.67 MXN"
    assert parsed["List-Unsubscribe"] == "<mailto:baja@recupero.local?subject=BAJA>"
    assert parsed["Content-Language"] == "es-MX"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    assert "Estimado(a) Ana Pérez:" in text.get_content()
    assert "<strong>$12,345.67 MXN</strong>" in html.get_content()


def test_a_line_break_in_a_name_cannot_add_a_header(templates: JinjaTemplates) -> None:
    due = action(name="Ana\nBcc: victim@example.com")
    email = compose_email(due, templates.render(due.template, ReminderContext.for_action(due)))

    message = build_message(email, MAIL_FROM)
    assert "Bcc" not in message
    # One recipient; the would-be header is only a quoted display name.
    assert message["To"] == '"Ana Bcc: victim@example.com" <ana@example.com>'


def test_email_action_without_address_is_an_error(templates: JinjaTemplates) -> None:
    due = action(email=None)
    with pytest.raises(NoEmailAddress):
        compose_email(due, templates.render(due.template, ReminderContext.for_action(due)))


class FakeDeliveries:
    """In-memory stand-in for `NotifierRepository`, same rules, for the send path."""

    def __init__(self, journal: list[str]) -> None:
        self.rows: dict[UUID, dict[str, Any]] = {}
        self._journal = journal

    async def delivery_outlooks(
        self, asked: Sequence[tuple[ActionDue, tuple[str, ...], str | None]]
    ) -> list[DeliveryOutlook]:
        # No tenant overrides and no session windows here: the shipped templates (overrides
        # and windows are tested on PostgreSQL).
        outlooks = []
        for action, _, _ in asked:
            row = self.rows.get(action.action_id)
            if row is None or row["tenant_id"] != action.tenant_id:
                outlooks.append(DeliveryOutlook(None, None, None))
                continue
            state = DeliveryState(row["status"], row.get("last_attempt_at"), row.get("retry_at"))
            outlooks.append(DeliveryOutlook(state, None, None))
        return outlooks

    async def record_attempts(
        self, attempts: Sequence[tuple[ActionDue, str, str]]
    ) -> dict[UUID, int]:
        numbers = {}
        for action, recipient, provider in attempts:
            row = self.rows.setdefault(
                action.action_id,
                {"tenant_id": action.tenant_id, "status": "sending", "attempts": 0},
            )
            if row["status"] in ("sent", "failed") or row["tenant_id"] != action.tenant_id:
                continue
            row.update(
                status="sending",
                recipient=recipient,
                provider=provider,
                attempts=row["attempts"] + 1,
                last_attempt_at=datetime.now(UTC),
            )
            self._journal.append("attempt recorded")
            numbers[action.action_id] = row["attempts"]
        return numbers

    async def mark_all_sent(self, sent: Sequence[tuple[str, UUID, str, datetime]]) -> set[UUID]:
        marked = set()
        for _, action_id, message_id, sent_at in sent:
            row = self.rows[action_id]
            if row["status"] != "sent":
                row.update(status="sent", message_id=message_id, sent_at=sent_at)
                marked.add(action_id)
        return marked

    async def mark_not_accepted(
        self, tenant_id: str, action_id: UUID, status: str, reason: str
    ) -> None:
        self.rows[action_id].update(status=status, failure=reason)

    async def park(self, action: ActionDue, status: str, reason: str, retry_at: datetime) -> None:
        self.rows[action.action_id].update(
            status=status, failure=reason, parked_action=action, retry_at=retry_at
        )

    async def record_unsupported_channel(self, action: ActionDue) -> None:
        self.rows.setdefault(
            action.action_id,
            {"tenant_id": action.tenant_id, "status": "unsupported_channel", "attempts": 0},
        )

    async def active_template(
        self, tenant_id: str, name: str, keys: tuple[str, ...]
    ) -> TemplateSource | None:
        # No tenant overrides here: the shipped templates (overrides are tested on PostgreSQL).
        return None

    async def claim_callback(self, provider: str, callback_key: str) -> bool:
        raise NotImplementedError("callbacks are tested on PostgreSQL")

    async def delivery_for_callback(self, action_id: UUID) -> Delivery | None:
        raise NotImplementedError("callbacks are tested on PostgreSQL")

    async def claim_status_callbacks(
        self, provider: str, callbacks: Sequence[tuple[str, UUID]]
    ) -> list[tuple[bool, Delivery | None]]:
        raise NotImplementedError("callbacks are tested on PostgreSQL")

    async def deliveries_to(self, channel: str, address: str) -> list[Delivery]:
        raise NotImplementedError("callbacks are tested on PostgreSQL")

    async def note_inbound(self, channel: str, address: str, at: datetime) -> None:
        raise NotImplementedError("callbacks are tested on PostgreSQL")


class FakeWork:
    def __init__(self, repo: FakeDeliveries, journal: list[str]) -> None:
        self.repo = repo
        self.published: list[EventPayload] = []
        self._journal = journal

    def publish(self, payload: EventPayload, correlation_id: str | None = None) -> str:
        self.published.append(payload)
        return str(uuid4())

    async def commit(self) -> None:
        self._journal.append("committed")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class FakeSender:
    def __init__(self, journal: list[str], fail_with: Exception | None = None) -> None:
        self.sent: list[OutgoingEmail] = []
        self.fail_with = fail_with
        self._journal = journal

    async def send(self, email: OutgoingEmail) -> None:
        self._journal.append("smtp called")
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(email)


class Notifier:
    """The handler wired to fakes, as bootstrap wires it to PostgreSQL and SMTP."""

    def __init__(self, templates: JinjaTemplates) -> None:
        self.journal: list[str] = []
        self.repo = FakeDeliveries(self.journal)
        self.sender = FakeSender(self.journal)
        self.templates = templates
        self.published: list[EventPayload] = []

    async def handle(self, due: ActionDue, *, resuming_parked: bool = False) -> None:
        uow = FakeWork(self.repo, self.journal)
        await carry_out_actions(
            [due],
            uow,
            attempts=lambda: FakeWork(self.repo, self.journal),
            channels={Channel.EMAIL: EmailChannel(self.sender)},
            templates=self.templates,
            unconfirmed_wait=timedelta(seconds=60),
            backoff=ParkingBackoff(initial=timedelta(seconds=5), maximum=timedelta(minutes=5)),
            resuming_parked=resuming_parked,
        )
        # Like the consumer's unit of work: events leave only when the handler returns.
        self.published.extend(uow.published)


async def test_email_action_is_sent_then_reported(templates: JinjaTemplates) -> None:
    notifier = Notifier(templates)

    await notifier.handle(action())

    [email] = notifier.sender.sent
    assert email.to_address == "ana@example.com"
    assert email.message_id == message_id_for(ACTION_ID)
    [published] = notifier.published
    assert isinstance(published, MessageSent)
    assert published.provider == "smtp"
    assert published.provider_message_id == message_id_for(ACTION_ID)
    assert published.action_id == ACTION_ID
    assert (published.tenant_id, published.debtor_id) == ("demo-bank", "C-000123")
    assert notifier.repo.rows[ACTION_ID]["status"] == "sent"
    assert notifier.repo.rows[ACTION_ID]["sent_at"] == published.sent_at
    # The attempt is on record, committed, before SMTP is called.
    assert notifier.journal == ["attempt recorded", "committed", "smtp called"]


async def test_action_already_sent_is_not_sent_again(templates: JinjaTemplates) -> None:
    notifier = Notifier(templates)

    await notifier.handle(action())
    await notifier.handle(action())

    assert len(notifier.sender.sent) == 1
    assert len(notifier.published) == 1
    assert notifier.repo.rows[ACTION_ID]["attempts"] == 1


async def test_failed_send_keeps_the_attempt_and_publishes_nothing(
    templates: JinjaTemplates,
) -> None:
    notifier = Notifier(templates)
    notifier.sender.fail_with = RuntimeError("provider down")

    # An unforeseen error, tried three times, is an unknown outcome: parked (the rest of a
    # batch is still recorded).
    await notifier.handle(action())
    assert notifier.repo.rows[ACTION_ID]["attempts"] == 3

    assert notifier.published == []
    assert notifier.repo.rows[ACTION_ID]["status"] == "sending"
    assert notifier.repo.rows[ACTION_ID]["retry_at"] is not None

    notifier.sender.fail_with = None
    await notifier.handle(action())
    assert notifier.sender.sent == [], "a redelivery leaves the parked delivery to the worker"
    await notifier.handle(action(), resuming_parked=True)

    assert len(notifier.sender.sent) == 1
    assert notifier.repo.rows[ACTION_ID]["attempts"] == 4
    assert len(notifier.published) == 1


async def test_other_channels_are_recorded_but_not_sent(templates: JinjaTemplates) -> None:
    notifier = Notifier(templates)

    await notifier.handle(action(channel=Channel.WHATSAPP))

    assert notifier.sender.sent == []
    assert notifier.published == []
    assert notifier.repo.rows[ACTION_ID]["status"] == "unsupported_channel"


async def test_unknown_template_fails_before_any_attempt(templates: JinjaTemplates) -> None:
    notifier = Notifier(templates)

    with pytest.raises(UnknownTemplate):
        await notifier.handle(action(template="third-reminder"))

    assert notifier.repo.rows == {}
    assert notifier.journal == []


async def test_refused_email_fails_the_delivery_and_reports_it_for_fallback(
    templates: JinjaTemplates,
) -> None:
    notifier = Notifier(templates)
    notifier.sender.fail_with = ProviderRefused("SMTP 550: mailbox unavailable")

    await notifier.handle(action())
    await notifier.handle(action())

    [failure] = notifier.published
    assert isinstance(failure, MessageStatusChanged)
    assert failure.status is MessageStatus.FAILED
    assert failure.detail == "SMTP 550: mailbox unavailable"
    assert notifier.repo.rows[ACTION_ID]["status"] == "failed"
    # A failed delivery is final: the redelivered action did not try again.
    assert notifier.journal.count("smtp called") == 1


async def test_unavailable_provider_parks_the_action_until_retry_after(
    templates: JinjaTemplates,
) -> None:
    notifier = Notifier(templates)
    notifier.sender.fail_with = ProviderUnavailable("SMTP 421: try later", retry_after=120)
    before = datetime.now(UTC)

    # Parked, not raised: the consumer moves on and nothing is dead-lettered.
    await notifier.handle(action())

    row = notifier.repo.rows[ACTION_ID]
    assert row["status"] == "retrying"
    assert row["parked_action"] == action()
    assert row["retry_at"] >= before + timedelta(seconds=120)
    assert notifier.published == []

    # The same action redelivered while parked is left to the retry worker.
    notifier.sender.fail_with = None
    await notifier.handle(action())
    assert notifier.sender.sent == []


def test_parking_backoff_doubles_up_to_its_maximum_and_honours_retry_after() -> None:
    backoff = ParkingBackoff(initial=timedelta(seconds=5), maximum=timedelta(seconds=60))
    delays = [backoff.delay(attempt, None) for attempt in (1, 2, 3, 10)]
    assert timedelta(seconds=4) <= delays[0] <= timedelta(seconds=5)
    assert timedelta(seconds=8) <= delays[1] <= timedelta(seconds=10)
    assert timedelta(seconds=16) <= delays[2] <= timedelta(seconds=20)
    assert timedelta(seconds=48) <= delays[3] <= timedelta(seconds=60)
    assert backoff.delay(1, 30) == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("text", "opt_out"),
    [
        ("BAJA", True),
        ("baja", True),
        ("¡Baja!", True),
        ("STOP", True),
        ("No molestar", True),
        ("no  MOLESTAR.", True),
        ("quiero pagar", False),
        ("no me den de baja", False),
        ("", False),
    ],
)
def test_opt_out_keywords(text: str, opt_out: bool) -> None:
    assert is_opt_out(text) is opt_out


def test_ivr_menu_keys() -> None:
    assert ivr_choice("1") is IvrChoice.PROMISE_TO_PAY
    assert ivr_choice("2") is IvrChoice.TALK_TO_AGENT
    assert ivr_choice("9") is None


def test_twilio_signature_matches_twilios_documented_example() -> None:
    # The example of https://www.twilio.com/docs/usage/security#validating-requests.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert twilio.signature_valid("12345", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not twilio.signature_valid(
        "12345", url, {**params, "Digits": "1"}, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )
    assert not twilio.signature_valid("12345", url, params, None)


def test_whatsapp_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    header = "sha256=" + hmac.new(b"secret", body, "sha256").hexdigest()
    assert whatsapp.signature_valid("secret", body, header)
    assert not whatsapp.signature_valid("secret", body + b" ", header)
    assert not whatsapp.signature_valid("other", body, header)
    assert not whatsapp.signature_valid("secret", body, None)


def test_ivr_reads_the_debt_in_spanish_and_gathers_one_key(templates: JinjaTemplates) -> None:
    due = action(channel=Channel.IVR)
    rendered = templates.render(due.template, ReminderContext.for_action(due))

    twiml = twilio.twiml(due, rendered, "https://notifier.example/webhooks/twilio/gather?a=1&b=2")

    assert twiml.startswith('<Response><Gather numDigits="1"')
    assert 'action="https://notifier.example/webhooks/twilio/gather?a=1&amp;b=2"' in twiml
    assert '<Say language="es-MX">Hola, Ana Pérez.' in twiml
    assert "$12,345.67 MXN" in twiml
    assert "marque 1" in twiml and "marque 2" in twiml


def test_whatsapp_sends_the_approved_template_outside_the_session_window(
    templates: JinjaTemplates,
) -> None:
    due = action(channel=Channel.WHATSAPP)
    rendered = templates.render(due.template, ReminderContext.for_action(due))
    adapter = whatsapp.WhatsAppCloud(
        ProviderClient(1, 1.0),
        api_url="http://graph.local",
        api_version="v21.0",
        phone_number_id="1065",
        access_token="token",
        limiter=TokenBucket(0),
        retry_budget_seconds=1,
    )

    template = adapter.request_body(due, rendered, session_open=False)
    session = adapter.request_body(due, rendered, session_open=True)

    assert template["to"] == "5215512345678"
    assert template["biz_opaque_callback_data"] == str(ACTION_ID)
    assert template["template"] == {
        "name": "first_reminder",
        "language": {"code": "es_MX"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ana Pérez"},
                    {"type": "text", "text": "$12,345.67 MXN"},
                    {"type": "text", "text": "05/03/2025"},
                ],
            }
        ],
    }
    assert session["type"] == "text"
    assert session["text"]["body"].startswith("Hola Ana Pérez, le recordamos")
    assert "BAJA" in session["text"]["body"]

"""Colombia (Ley 2300 de 2023) allows contact only on channels the debtor authorised: recorded
through the orchestrator's API or carried by the portfolio as a custom attribute, judged by the real
contact policy when each action comes due, on a real PostgreSQL (and Kafka for what is published)."""

from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import pytest

from recupero_events import (
    ActionDue,
    ContactDetails,
    DebtDocument,
    DebtImported,
    DebtorAttributes,
    DocumentKind,
    Money,
)
from recupero_orchestrator import handlers
from tests.integration.test_orchestrator_scenario import (
    DEBTOR,
    Orchestrator,
    _timing,
    orchestrator,
    segmented,
)

pytestmark = pytest.mark.integration
__all__ = ["orchestrator"]  # the fixture, shared with the scenario test

BOGOTA = ContactDetails(
    name="Camila Rojas",
    email="camila@example.com",
    phone="+573001234567",
    country="CO",
    time_zone="America/Bogota",
    locale="es-CO",
)
# Email on three working days (Monday 2 November 2026 is a Colombian holiday): one channel and
# one contact a day, as Ley 2300 allows once the channel is authorised.
EMAILS = {
    "strategy_id": "co-email",
    "version": 1,
    "name": "Email reminders",
    "segments": ["1-30"],
    "steps": [
        {
            "step_id": f"email-{day}",
            "timing": {"anchor": "segment_entry", "days": day, "local_time": "10:00"},
            "channel": "email",
            "template": "first-reminder",
        }
        for day in (0, 2, 6)
    ],
}


def bogota(day: int, hour: int) -> datetime:
    """An instant in November 2026 given in Bogotá's local time (UTC-5, no daylight saving)."""
    return datetime(2026, 11, day, hour + 5, tzinfo=UTC)


async def _colombian_debtor_on_emails(o: Orchestrator) -> None:
    url = f"/v1/strategies/{EMAILS['strategy_id']}/versions/1"
    assert (await o.client.put(url, json=EMAILS)).status_code == 200
    assert (await o.client.post(f"{url}/activate")).status_code == 200
    o.clock.now = bogota(3, 9)
    event = segmented(o.tenant_id, "1-30", "co-email", 12, o.clock.now)
    await o.handle(
        handlers.debtor_segmented_handler(o.clock, _timing()),
        event.model_copy(update={"contact": BOGOTA}),
    )


async def _decisions(o: Orchestrator) -> list[tuple[str, str, str]]:
    rows = (await o.client.get(f"/v1/debtors/{DEBTOR}/contact-decisions")).json()
    # Keys are `strategy@version/entered/step/round/attempt`.
    return [(row["action_key"].split("/")[2], row["verdict"], row["rule_id"]) for row in rows]


async def _emails_sent(o: Orchestrator) -> list[str]:
    due = await o.published("action-due")
    assert all(isinstance(event, ActionDue) for event in due)
    return [event.strategy for event in due if event.debtor_id == DEBTOR]


def imported(attributes: dict[str, str] | None, as_of: datetime) -> DebtImported:
    return DebtImported(
        tenant_id="set-by-test",
        debtor_id=DEBTOR,
        import_id=uuid4(),
        as_of=as_of,
        contact=BOGOTA,
        attributes=None if attributes is None else DebtorAttributes(custom=attributes),
        documents=[
            DebtDocument(
                document_id="FC-1",
                kind=DocumentKind.INVOICE,
                due_on=date(2026, 10, 22),
                amount=Money(amount_minor=250_000, currency="MXN"),
            )
        ],
        balance=Money(amount_minor=250_000, currency="MXN"),
        oldest_due_on=date(2026, 10, 22),
        change="new",
    )


async def _import(o: Orchestrator, attributes: dict[str, str] | None) -> None:
    event = imported(attributes, o.clock.now).model_copy(update={"tenant_id": o.tenant_id})
    await o.handle(handlers.debt_imported_handler(o.clock), event)


async def _authorised(o: Orchestrator) -> dict[str, Any]:
    response = await o.client.get(f"/v1/debtors/{DEBTOR}/authorised-channels")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def test_email_is_refused_until_authorised_through_the_api_and_again_once_revoked(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    await _colombian_debtor_on_emails(o)

    await o.at(bogota(3, 10))
    assert await _decisions(o) == [("email-0", "dropped", "co.authorised-channels")]
    assert await _emails_sent(o) == []

    o.clock.now = bogota(3, 16)
    recorded = await o.client.post(
        f"/v1/debtors/{DEBTOR}/authorised-channels",
        json={
            "channels": ["email", "sms"],
            "authorised_at": bogota(3, 15).isoformat(),
            "evidence": "signed form F-2291",
        },
    )
    assert recorded.status_code == 200, recorded.text
    assert [(c["channel"], c["source"]) for c in recorded.json()["channels"]] == [
        ("email", "api"),
        ("sms", "api"),
    ]
    await o.at(bogota(5, 10))
    assert (await _decisions(o))[1:] == [("email-2", "allowed", "allowed")]
    assert await _emails_sent(o) == ["co-email@1/email-2"]

    # Withdrawn with the last email still pending: it is judged against what holds when it is due.
    o.clock.now = bogota(6, 12)
    revoked = await o.client.post(
        f"/v1/debtors/{DEBTOR}/authorised-channels/email/revoke",
        json={"evidence": "asked on the phone, recording 8841"},
    )
    assert revoked.status_code == 200, revoked.text
    pending = await o.query(
        "SELECT step_id FROM orchestrator.scheduled_actions WHERE tenant_id = :t"
        " AND status = 'pending'"
    )
    assert [row["step_id"] for row in pending] == ["email-6"]
    await o.at(bogota(9, 10))
    decisions = (await o.client.get(f"/v1/debtors/{DEBTOR}/contact-decisions")).json()
    assert (decisions[-1]["verdict"], decisions[-1]["rule_id"]) == (
        "dropped",
        "co.authorised-channels",
    )
    assert decisions[-1]["reason"] == "email was not authorised by the debtor (authorised: sms)"
    assert await _emails_sent(o) == ["co-email@1/email-2"]

    state = await _authorised(o)
    assert [c["channel"] for c in state["channels"]] == ["sms"]
    assert [(h["channel"], h["change"], h["evidence"]) for h in state["history"]] == [
        ("email", "authorised", "signed form F-2291"),
        ("sms", "authorised", "signed form F-2291"),
        ("email", "revoked", "asked on the phone, recording 8841"),
    ]
    assert datetime.fromisoformat(state["history"][0]["effective_at"]) == bogota(3, 15)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"channels": ["fax"]}, "unknown channel 'fax'"),
        ({"channels": ["legal_referral"]}, "legal_referral does not contact the debtor"),
        ({"channels": ["sms", "sms"]}, "channels listed more than once: sms"),
        ({"channels": []}, "at least 1 item"),
        ({"evidence": ""}, "at least 1 character"),
        ({"authorised_at": "2026-11-03T10:00:00"}, "timezone"),
        (
            {"authorised_at": "2027-01-01T00:00:00Z"},
            "authorised_at: 2027-01-01T00:00:00+00:00 is in the future",
        ),
    ],
)
async def test_authorisations_that_cannot_be_recorded_are_refused_with_the_reason(
    orchestrator: Orchestrator, body: dict[str, Any], error: str
) -> None:
    o = orchestrator
    valid = {"channels": ["sms"], "authorised_at": "2026-11-01T10:00:00Z", "evidence": "form"}
    response = await o.client.post(
        f"/v1/debtors/{DEBTOR}/authorised-channels", json={**valid, **body}
    )
    assert response.status_code == 422
    assert error in response.text
    assert (await _authorised(o))["channels"] == []


async def test_revoking_an_unknown_channel_is_refused(orchestrator: Orchestrator) -> None:
    response = await orchestrator.client.post(
        f"/v1/debtors/{DEBTOR}/authorised-channels/telegram/revoke", json={"evidence": "x"}
    )
    assert response.status_code == 422
    assert "unknown channel 'telegram'" in response.json()["detail"]["errors"][0]


async def test_an_import_attribute_authorises_channels_and_later_imports_keep_the_debtors_word(
    orchestrator: Orchestrator,
) -> None:
    o = orchestrator
    o.clock.now = bogota(3, 8)
    await _import(o, {"CANALES_AUTORIZADOS": "WhatsApp; email", "CANAL_PREFERIDO": "sms"})
    state = await _authorised(o)
    assert [(c["channel"], c["source"]) for c in state["channels"]] == [
        ("email", "import"),
        ("whatsapp", "import"),
    ]
    assert "attribute 'CANALES_AUTORIZADOS'" in state["channels"][0]["evidence"]

    await _colombian_debtor_on_emails(o)
    await o.at(bogota(3, 10))
    assert await _decisions(o) == [("email-0", "allowed", "allowed")]
    assert await _emails_sent(o) == ["co-email@1/email-0"]

    # The debtor withdraws WhatsApp through an agent; the creditor's next file still lists it.
    revoked = await o.client.post(
        f"/v1/debtors/{DEBTOR}/authorised-channels/whatsapp/revoke",
        json={"evidence": "told agent 7 on the phone"},
    )
    assert revoked.status_code == 200
    o.clock.now = bogota(4, 8)
    await _import(o, {"authorised_channels": "whatsapp;sms"})
    # An import without the attribute says nothing about authorisations.
    await _import(o, {"CANAL_PREFERIDO": "sms"})
    await _import(o, None)
    state = await _authorised(o)
    assert [(c["channel"], c["source"]) for c in state["channels"]] == [("sms", "import")]
    assert [(h["channel"], h["change"], h["source"]) for h in state["history"]] == [
        ("email", "authorised", "import"),
        ("whatsapp", "authorised", "import"),
        ("whatsapp", "revoked", "api"),
        ("sms", "authorised", "import"),
        ("email", "revoked", "import"),
    ]

    # Email is no longer authorised by the creditor's file: the next email step is refused.
    await o.at(bogota(5, 10))
    assert (await _decisions(o))[1:] == [("email-2", "dropped", "co.authorised-channels")]

"""Contact policy: hours, holidays, caps, opt-outs and holds in each debtor's own time zone."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recupero_orchestrator.domain.channels import CONTACT_CHANNELS, ContactChannel
from recupero_orchestrator.domain.contact_policy import (
    ContactPolicy,
    ContactRecord,
    DebtorContactContext,
    Decision,
    Hold,
    HoldKind,
    LooserThanCountryDefault,
    ProposedAction,
    TenantPolicyOverride,
    Verdict,
    Weekday,
    country_defaults,
    decide,
    default_policy_for,
    is_public_holiday,
    parse_policy_document,
    parse_tenant_override,
    relevant_history,
    tighten,
)

ZONES = {
    "MX": "America/Mexico_City",
    "CO": "America/Bogota",
    "AR": "America/Argentina/Buenos_Aires",
    "PE": "America/Lima",
    "CL": "America/Santiago",
    "US": "America/New_York",
}
EVERY_CHANNEL = frozenset(ContactChannel)


def debtor(country: str, **extra: object) -> DebtorContactContext:
    extra.setdefault("authorised_channels", EVERY_CHANNEL)
    return DebtorContactContext(country=country, time_zone=ZONES[country], **extra)  # type: ignore[arg-type]


def local(country: str, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(ZONES[country]))


def ask(
    country: str,
    at: datetime,
    channel: ContactChannel = ContactChannel.WHATSAPP,
    history: list[ContactRecord] | None = None,
    **context: object,
) -> Decision:
    return decide(
        ProposedAction(channel, at),
        debtor(country, **context),
        history or [],
        at,
        policy=default_policy_for(country),
    )


def test_an_early_morning_action_in_mexico_city_moves_to_seven() -> None:
    decision = ask("MX", local("MX", 2026, 11, 3, 6, 30))
    assert decision.verdict is Verdict.MOVED
    assert decision.at == local("MX", 2026, 11, 3, 7, 0)
    assert decision.rule_id == "mx.contact-hours"
    assert "06:30 is before contact hours 07:00–22:00 on Tuesday" in decision.reason


def test_an_action_inside_the_hours_is_allowed_as_planned() -> None:
    at = local("MX", 2026, 11, 3, 12, 0)
    decision = ask("MX", at)
    assert (decision.verdict, decision.at, decision.rule_id) == (Verdict.ALLOWED, at, "allowed")


def test_a_weekend_action_in_mexico_waits_for_monday() -> None:
    decision = ask("MX", local("MX", 2026, 11, 7, 10, 0))
    assert decision.at == local("MX", 2026, 11, 9, 7, 0)
    assert "no contact on Saturdays" in decision.reason


def test_colombia_never_on_sunday_and_saturday_only_until_three() -> None:
    sunday = ask("CO", local("CO", 2026, 11, 8, 10, 0))
    assert sunday.at == local("CO", 2026, 11, 9, 7, 0)
    saturday_afternoon = ask("CO", local("CO", 2026, 11, 7, 15, 30))
    assert saturday_afternoon.at == local("CO", 2026, 11, 9, 7, 0)
    saturday_morning = ask("CO", local("CO", 2026, 11, 7, 7, 30))
    assert saturday_morning.at == local("CO", 2026, 11, 7, 8, 0)


def test_a_colombian_public_holiday_is_skipped() -> None:
    assert is_public_holiday("CO", datetime(2026, 1, 12).date())  # Reyes, moved to Monday
    decision = ask("CO", local("CO", 2026, 1, 12, 10, 0))
    assert decision.at == local("CO", 2026, 1, 13, 7, 0)
    assert decision.rule_id == "co.public-holidays"
    assert "2026-01-12 is a public holiday in CO" in decision.reason


def test_the_eighth_call_in_seven_days_is_blocked_by_reg_f() -> None:
    calls = [
        ContactRecord(local("US", 2026, 11, day, 10, 0), ContactChannel.AGENT_CALL)
        for day in range(2, 9)
    ]
    decision = ask("US", local("US", 2026, 11, 8, 15, 0), ContactChannel.AGENT_CALL, calls)
    assert decision.verdict is Verdict.MOVED
    assert decision.rule_id == "us.reg-f.calls-7-in-7-days"
    assert decision.at == local("US", 2026, 11, 9, 10, 0)  # when the first call leaves the window
    assert "7 contact(s) already in the last 7 day(s), limit 7" in decision.reason

    email = ask("US", local("US", 2026, 11, 8, 15, 0), ContactChannel.EMAIL, calls)
    assert email.verdict is Verdict.ALLOWED


def test_no_call_within_seven_days_after_a_conversation_in_the_us() -> None:
    talked = [ContactRecord(local("US", 2026, 11, 2, 11, 0), ContactChannel.IVR, conversation=True)]
    decision = ask("US", local("US", 2026, 11, 5, 11, 0), ContactChannel.AGENT_CALL, talked)
    assert decision.rule_id == "us.reg-f.call-after-conversation"
    assert decision.at == local("US", 2026, 11, 9, 11, 0)


def test_colombia_allows_one_contact_a_day() -> None:
    morning = [ContactRecord(local("CO", 2026, 11, 4, 9, 0), ContactChannel.WHATSAPP)]
    decision = ask("CO", local("CO", 2026, 11, 4, 11, 0), history=morning)
    assert decision.rule_id == "co.one-contact-per-day"
    assert decision.at == local("CO", 2026, 11, 5, 7, 0)


def test_colombia_allows_one_channel_a_week() -> None:
    wednesday = [ContactRecord(local("CO", 2026, 11, 4, 9, 0), ContactChannel.WHATSAPP)]
    same_channel = ask("CO", local("CO", 2026, 11, 5, 10, 0), history=wednesday)
    assert same_channel.verdict is Verdict.ALLOWED
    sms = ask("CO", local("CO", 2026, 11, 5, 10, 0), ContactChannel.SMS, wednesday)
    assert sms.rule_id == "co.one-channel-per-week"
    assert sms.at == local("CO", 2026, 11, 9, 7, 0)  # next calendar week, at opening time
    assert [hit.rule_id for hit in sms.trail] == ["co.one-channel-per-week", "co.contact-hours"]


def test_colombia_uses_only_channels_the_debtor_authorised() -> None:
    at = local("CO", 2026, 11, 4, 10, 0)
    only_email = ask("CO", at, authorised_channels=frozenset({ContactChannel.EMAIL}))
    assert (only_email.verdict, only_email.rule_id) == (Verdict.DROPPED, "co.authorised-channels")
    unknown = ask("CO", at, authorised_channels=None)
    assert unknown.verdict is Verdict.DROPPED
    assert "no channel authorisation is recorded" in unknown.reason


def test_a_whatsapp_opt_out_blocks_whatsapp_only() -> None:
    at = local("MX", 2026, 11, 4, 10, 0)
    opted_out = frozenset({ContactChannel.WHATSAPP})
    whatsapp = ask("MX", at, ContactChannel.WHATSAPP, opted_out_channels=opted_out)
    assert (whatsapp.verdict, whatsapp.rule_id) == (Verdict.DROPPED, "opt-out.whatsapp")
    sms = ask("MX", at, ContactChannel.SMS, opted_out_channels=opted_out)
    assert sms.verdict is Verdict.ALLOWED


def test_a_dispute_hold_drops_every_action_even_a_legal_referral() -> None:
    at = local("PE", 2026, 11, 4, 10, 0)
    hold = (Hold(HoldKind.DISPUTE, since=at - timedelta(days=1)),)
    for channel in (ContactChannel.EMAIL, ContactChannel.LEGAL_REFERRAL):
        decision = ask("PE", at, channel, holds=hold)
        assert (decision.verdict, decision.rule_id) == (Verdict.DROPPED, "hold.dispute")
        assert decision.at is None


def test_do_not_contact_stops_contact_but_not_a_legal_referral_and_a_lifted_hold_is_ignored() -> (
    None
):
    at = local("AR", 2026, 11, 4, 10, 0)
    do_not_contact = (Hold(HoldKind.DO_NOT_CONTACT, since=at - timedelta(days=1)),)
    assert ask("AR", at, ContactChannel.SMS, holds=do_not_contact).rule_id == (
        "hold.do_not_contact"
    )
    referral = ask("AR", at, ContactChannel.LEGAL_REFERRAL, holds=do_not_contact)
    assert referral.verdict is Verdict.ALLOWED
    lifted = (Hold(HoldKind.HARDSHIP, since=at - timedelta(days=30), until=at - timedelta(days=1)),)
    assert ask("AR", at, ContactChannel.SMS, holds=lifted).verdict is Verdict.ALLOWED


def test_spring_forward_in_new_york_keeps_eight_o_clock_local() -> None:
    # 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT.
    decision = ask("US", local("US", 2026, 3, 8, 7, 30))
    assert decision.at == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 08:00 EDT, not 13:00 UTC
    day_before = ask("US", local("US", 2026, 3, 7, 7, 30))
    assert day_before.at == datetime(2026, 3, 7, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_a_santiago_saturday_evening_moves_across_the_dst_night_to_monday() -> None:
    # Chile springs forward at midnight between 2026-09-05 and 2026-09-06: 00:00 never happens.
    decision = ask("CL", local("CL", 2026, 9, 5, 20, 30))
    assert decision.at == datetime(2026, 9, 7, 11, 0, tzinfo=UTC)  # Monday 08:00 at UTC-3
    assert decision.at.astimezone(ZoneInfo("America/Santiago")).hour == 8


def test_a_local_day_cap_ends_at_local_midnight_even_when_midnight_does_not_exist() -> None:
    policy = parse_policy_document(
        """
        policy_id: test.daily
        country: CL
        legal_source: test
        hours: {sat: {start: "00:00", end: "23:59"}, sun: {start: "00:00", end: "23:59"}}
        skip_public_holidays: false
        frequency_caps:
          - {rule_id: test.one-a-day, limit: 1, window: local_days, length: 1}
        """
    )
    saturday = local("CL", 2026, 9, 5, 10, 0)
    history = [ContactRecord(saturday, ContactChannel.EMAIL)]
    later = local("CL", 2026, 9, 5, 22, 0)
    decision = decide(
        ProposedAction(ContactChannel.EMAIL, later), debtor("CL"), history, later, policy=policy
    )
    # Sunday begins at 01:00 -03 (04:00 UTC), the instant the clocks jump.
    assert decision.at == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)


def test_an_action_that_cannot_happen_before_it_expires_is_dropped_with_the_blocking_rule() -> None:
    friday_night = local("MX", 2026, 11, 6, 23, 0)
    decision = decide(
        ProposedAction(
            ContactChannel.SMS, friday_night, expires_at=friday_night + timedelta(days=1)
        ),
        debtor("MX"),
        [],
        friday_night,
        policy=default_policy_for("MX"),
    )
    assert (decision.verdict, decision.rule_id) == (Verdict.DROPPED, "mx.contact-hours")
    assert "the action expires" in decision.reason


def test_a_tenant_may_tighten_the_country_default() -> None:
    override = parse_tenant_override(
        """
        country: CO
        hours:
          mon: {start: "09:00", end: "18:00"}
          sat: null
        blocked_channels: [ivr]
        frequency_caps:
          - {rule_id: co.one-contact-per-day, limit: 1, window: local_days, length: 2}
          - {rule_id: acme.sms-per-month, channels: [sms], limit: 4, window: rolling_days, length: 30}
        """
    )
    policy = tighten(country_defaults()["CO"], override, "acme")
    assert policy.hours[Weekday.MON].start.hour == 9
    assert Weekday.SAT not in policy.hours
    assert {cap.rule_id for cap in policy.frequency_caps} == {
        "co.one-contact-per-day",
        "co.one-channel-per-week",
        "acme.sms-per-month",
    }
    monday_early = ask_with(policy, "CO", local("CO", 2026, 11, 9, 8, 0))
    assert (monday_early.rule_id, monday_early.at) == (
        "tenant.acme.contact-hours",
        local("CO", 2026, 11, 9, 9, 0),
    )
    ivr = ask_with(policy, "CO", local("CO", 2026, 11, 9, 10, 0), ContactChannel.IVR)
    assert ivr.verdict is Verdict.DROPPED


def ask_with(
    policy: ContactPolicy, country: str, at: datetime, channel: ContactChannel = ContactChannel.SMS
) -> Decision:
    return decide(ProposedAction(channel, at), debtor(country), [], at, policy=policy)


def test_a_tenant_cannot_loosen_the_country_default() -> None:
    override = TenantPolicyOverride.model_validate(
        {
            "country": "CO",
            "hours": {
                "sat": {"start": "07:00", "end": "16:00"},
                "sun": {"start": "09:00", "end": "12:00"},
            },
            "skip_public_holidays": False,
            "only_authorised_channels": False,
            "frequency_caps": [
                {
                    "rule_id": "co.one-contact-per-day",
                    "limit": 2,
                    "window": "local_days",
                    "length": 1,
                }
            ],
        }
    )
    with pytest.raises(LooserThanCountryDefault) as raised:
        tighten(country_defaults()["CO"], override, "acme")
    problems = raised.value.problems
    assert any(
        p.startswith("hours.sat: 07:00–16:00 is outside the country default 08:00–15:00")
        for p in problems
    )
    assert any(p.startswith("hours.sun:") and "forbids contact on Sunday" in p for p in problems)
    assert any(p.startswith("skip_public_holidays:") for p in problems)
    assert any(p.startswith("only_authorised_channels:") for p in problems)
    assert any(p.startswith("frequency_caps[0] (co.one-contact-per-day): looser") for p in problems)


def test_every_country_default_names_its_legal_source() -> None:
    defaults = country_defaults()
    assert set(defaults) == {"MX", "AR", "CO", "PE", "CL", "US"}
    assert all(policy.legal_source and policy.country == code for code, policy in defaults.items())
    assert default_policy_for("BR").policy_id == "default.cautious"


# --- Properties -------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
countries = st.sampled_from(sorted(ZONES))
contact_channels = st.sampled_from(sorted(CONTACT_CHANNELS))


@settings(max_examples=300, deadline=None)
@given(country=countries, at=instants, channel=contact_channels)
def test_any_decided_slot_is_inside_the_hours_and_not_a_holiday(
    country: str, at: datetime, channel: ContactChannel
) -> None:
    policy = default_policy_for(country)
    decision = decide(ProposedAction(channel, at), debtor(country), [], at, policy=policy)
    assert decision.verdict in (Verdict.ALLOWED, Verdict.MOVED)
    assert decision.at is not None and decision.at >= at
    slot = decision.at.astimezone(ZoneInfo(ZONES[country]))
    window = policy.hours[Weekday.of(slot.date())]
    assert window.contains(slot.time())
    if policy.skip_public_holidays:
        assert not is_public_holiday(country, slot.date())
    if decision.verdict is Verdict.MOVED:
        assert decision.rule_id == decision.trail[0].rule_id


@settings(max_examples=200, deadline=None)
@given(
    country=st.sampled_from(["CO", "CL", "US"]),
    at=instants,
    channel=contact_channels,
    past=st.lists(
        st.tuples(st.integers(1, 14 * 24 * 60), contact_channels, st.booleans()), max_size=12
    ),
)
def test_a_moved_action_is_allowed_when_asked_again_at_its_new_slot(
    country: str,
    at: datetime,
    channel: ContactChannel,
    past: list[tuple[int, ContactChannel, bool]],
) -> None:
    policy = default_policy_for(country)
    history = [
        ContactRecord(at - timedelta(minutes=minutes), used, conversation)
        for minutes, used, conversation in past
    ]
    first = decide(ProposedAction(channel, at), debtor(country), history, at, policy=policy)
    if first.verdict is Verdict.DROPPED:
        return
    assert first.at is not None
    again = decide(
        ProposedAction(channel, first.at), debtor(country), history, first.at, policy=policy
    )
    assert (again.verdict, again.at) == (Verdict.ALLOWED, first.at)


@settings(max_examples=300, deadline=None)
@given(
    country=countries,
    at=instants,
    channel=contact_channels,
    asked_later_by=st.integers(0, 3 * 24 * 60),
    history_around=st.lists(
        st.tuples(st.integers(-30 * 24 * 60, 24 * 60), contact_channels, st.booleans()),
        max_size=12,
    ),
)
def test_only_the_contacts_that_still_count_decide(
    country: str,
    at: datetime,
    channel: ContactChannel,
    asked_later_by: int,
    history_around: list[tuple[int, ContactChannel, bool]],
) -> None:
    # What planning the day shares between debtors: a decision made on the contacts that still
    # count is the decision made on the whole history, also when asked after the planned time.
    policy = default_policy_for(country)
    history = sorted(
        (
            ContactRecord(at + timedelta(minutes=minutes), used, conversation)
            for minutes, used, conversation in history_around
        ),
        key=lambda record: (record.at, record.channel.value),
    )
    action = ProposedAction(channel, at)
    now = at + timedelta(minutes=asked_later_by)
    relevant = relevant_history(action, debtor(country), history, now, policy=policy)
    assert set(relevant) <= set(history)
    assert decide(action, debtor(country), relevant, now, policy=policy) == decide(
        action, debtor(country), history, now, policy=policy
    )

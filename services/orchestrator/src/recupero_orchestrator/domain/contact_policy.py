"""Contact policy: whether, and when, an action may reach a debtor.

Checked before every `action-due`. The rules are data: one default per country (`COUNTRY_DEFAULTS`,
researched from the regulation named in each policy's `legal_source`), which a tenant may tighten but
never loosen (`tighten`). `decide` answers for one proposed action with a `Decision`: allowed, moved
to the next allowed slot, or dropped, always naming the rule that decided and why, so a supervisor can
see why a debtor was or was not contacted.

All instants are timezone-aware; rolling windows are measured in absolute time (UTC), while contact
hours, calendar days and weeks are the debtor's own wall clock (zoneinfo), so daylight-saving changes
neither stretch nor shrink a window. Public holidays come from the `holidays` package, national only.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache, lru_cache, partial
from typing import Annotated, Any, Literal, Self, TypeVar
from zoneinfo import ZoneInfo

import holidays
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from recupero_orchestrator.domain.channels import (
    CALL_CHANNELS,
    CONTACT_CHANNELS,
    ChannelField,
    ContactChannel,
)

# Whatever the rules, an action is never moved further than this: past it, it is dropped.
ABSOLUTE_MAX_DEFERRAL_DAYS = 60
_MAX_SLOT_SEARCH_STEPS = 1_000


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, day: date) -> "Weekday":
        return _WEEKDAYS[day.weekday()]


_WEEKDAYS = tuple(Weekday)  # in `date.weekday()` order
_WEEKDAY_NAMES = {
    Weekday.MON: "Monday",
    Weekday.TUE: "Tuesday",
    Weekday.WED: "Wednesday",
    Weekday.THU: "Thursday",
    Weekday.FRI: "Friday",
    Weekday.SAT: "Saturday",
    Weekday.SUN: "Sunday",
}


class ContactWindow(BaseModel):
    """Hours of one day, in the debtor's local time: from `start` (included) to `end` (excluded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("contact hours are local wall-clock times, without a time zone")
        if not self.start < self.end:
            raise ValueError(f"start {self.start:%H:%M} must be before end {self.end:%H:%M}")
        return self

    def contains(self, wall_time: time) -> bool:
        return self.start <= wall_time < self.end

    def within(self, other: "ContactWindow") -> bool:
        return other.start <= self.start and self.end <= other.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


class WindowKind(StrEnum):
    """How a frequency cap's window is measured."""

    # The last `length` × 24 hours before the action.
    ROLLING_DAYS = "rolling_days"
    # Today and the `length - 1` previous calendar days, in the debtor's time zone.
    LOCAL_DAYS = "local_days"
    # This calendar week (Monday to Sunday) and the `length - 1` previous ones, in local time.
    LOCAL_WEEKS = "local_weeks"


def _slug(description: str) -> Any:
    return Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", min_length=1, description=description)


class FrequencyCap(BaseModel):
    """At most `limit` contacts (or distinct channels) on `channels` within a window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule_id: Annotated[str, _slug("Stable id quoted in every decision this cap makes.")]
    description: str = ""
    channels: frozenset[ChannelField] | None = Field(
        default=None, description="Channels counted and restricted; null means every contact."
    )
    counts: Literal["contacts", "channels"] = Field(
        default="contacts",
        description="`contacts` caps how many contacts; `channels` caps how many different "
        "channels (e.g. Colombia's 'not several channels in the same week').",
    )
    limit: PositiveInt
    window: WindowKind
    length: PositiveInt = Field(description="Days, or weeks for `local_weeks`.")

    def scope(self) -> frozenset[ContactChannel]:
        return CONTACT_CHANNELS if self.channels is None else self.channels

    def at_least_as_strict_as(self, other: "FrequencyCap") -> bool:
        return (
            self.counts == other.counts
            and self.window == other.window
            and self.limit <= other.limit
            and self.length >= other.length
            and self.scope() >= other.scope()
        )


class SpacingRule(BaseModel):
    """No contact on `channels` within `min_gap_hours` after a contact (or a conversation) on them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule_id: Annotated[str, _slug("Stable id quoted in every decision this rule makes.")]
    description: str = ""
    channels: frozenset[ChannelField] | None = None
    after: Literal["contact", "conversation"] = Field(
        default="contact",
        description="`conversation`: only a contact in which the debtor was actually reached "
        "starts the gap (US Reg F: no call within 7 days after a telephone conversation).",
    )
    min_gap_hours: PositiveInt

    def scope(self) -> frozenset[ContactChannel]:
        return CONTACT_CHANNELS if self.channels is None else self.channels

    def at_least_as_strict_as(self, other: "SpacingRule") -> bool:
        gap_covers = self.min_gap_hours >= other.min_gap_hours
        trigger_covers = self.after == other.after or self.after == "contact"
        return gap_covers and trigger_covers and self.scope() >= other.scope()


CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class ContactPolicy(BaseModel):
    """The complete set of rules `decide` applies to a debtor: a country default, maybe tightened."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy_id: Annotated[
        str,
        Field(
            pattern=r"^[a-z0-9][a-z0-9._+-]*$",
            description="Id of this policy, e.g. `co.ley-2300-2023`; `+tenant` when tightened.",
        ),
    ]
    country: CountryCode | None = Field(
        description="Country the policy is for; null for the fallback used where none is defined."
    )
    legal_source: str = Field(description="Regulation the defaults come from.")
    notes: str = ""
    hours: dict[Weekday, ContactWindow] = Field(
        description="Contact hours per weekday in the debtor's local time; a missing day allows "
        "no contact at all."
    )
    hours_rule_id: str = ""
    skip_public_holidays: bool = Field(description="No contact on the country's public holidays.")
    holidays_rule_id: str = ""
    frequency_caps: tuple[FrequencyCap, ...] = ()
    spacing_rules: tuple[SpacingRule, ...] = ()
    only_authorised_channels: bool = Field(
        default=False,
        description="Only channels the debtor authorised may be used (Colombia, Ley 2300).",
    )
    blocked_channels: frozenset[ChannelField] = Field(
        default_factory=frozenset, description="Channels never used for debtors of this policy."
    )
    max_deferral_days: Annotated[int, Field(ge=0, le=ABSOLUTE_MAX_DEFERRAL_DAYS)] = Field(
        default=14,
        description="An action that cannot be placed within this many days of its planned time "
        "is dropped instead of moved.",
    )

    @model_validator(mode="after")
    def _rule_ids(self) -> Self:
        prefix = (self.country or "default").lower()
        if not self.hours_rule_id:
            object.__setattr__(self, "hours_rule_id", f"{prefix}.contact-hours")
        if not self.holidays_rule_id:
            object.__setattr__(self, "holidays_rule_id", f"{prefix}.public-holidays")
        ids = [cap.rule_id for cap in self.frequency_caps]
        ids += [rule.rule_id for rule in self.spacing_rules]
        duplicated = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicated:
            raise ValueError(f"rule ids must be unique, repeated: {', '.join(duplicated)}")
        if self.country is not None and self.country not in _supported_countries():
            raise ValueError(f"no public-holiday calendar for country {self.country!r}")
        return self


class TenantPolicyOverride(BaseModel):
    """A tenant's tightening of its country's default. Anything left out keeps the default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    country: CountryCode
    hours: dict[Weekday, ContactWindow | None] | None = Field(
        default=None,
        description="Narrower hours per weekday; null for a day forbids contact on it. Days not "
        "listed keep the country's hours.",
    )
    skip_public_holidays: bool | None = None
    frequency_caps: tuple[FrequencyCap, ...] = Field(
        default=(),
        description="A cap with a country rule's id replaces it and must be at least as strict; "
        "any other cap is added.",
    )
    spacing_rules: tuple[SpacingRule, ...] = ()
    only_authorised_channels: bool | None = None
    blocked_channels: frozenset[ChannelField] = frozenset()
    max_deferral_days: Annotated[int, Field(ge=0)] | None = None


class LooserThanCountryDefault(ValueError):
    """A tenant override that would allow something the country default forbids."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def tighten(
    default: ContactPolicy, override: TenantPolicyOverride, tenant_id: str
) -> ContactPolicy:
    """The policy a tenant's debtors get: the country default made stricter, never looser.

    Raises `LooserThanCountryDefault` listing every offending field by path.
    """
    problems: list[str] = []
    if default.country is not None and override.country != default.country:
        problems.append(
            f"country: override is for {override.country}, default is for {default.country}"
        )

    hours = dict(default.hours)
    hours_changed = False
    for day, window in (override.hours or {}).items():
        allowed = default.hours.get(day)
        if window is None:
            hours.pop(day, None)
            hours_changed = True
        elif allowed is None:
            problems.append(
                f"hours.{day.value}: {window} is allowed by the tenant but the country default "
                f"({default.policy_id}) forbids contact on {_WEEKDAY_NAMES[day]}"
            )
        elif not window.within(allowed):
            problems.append(
                f"hours.{day.value}: {window} is outside the country default {allowed} "
                f"({default.policy_id})"
            )
        else:
            hours[day] = window
            hours_changed = hours_changed or window != allowed

    skip_holidays = default.skip_public_holidays
    if override.skip_public_holidays is not None:
        if default.skip_public_holidays and not override.skip_public_holidays:
            problems.append(
                f"skip_public_holidays: the country default ({default.policy_id}) forbids contact "
                "on public holidays"
            )
        skip_holidays = skip_holidays or override.skip_public_holidays

    caps = _merge_rules(default.frequency_caps, override.frequency_caps, "frequency_caps", problems)
    spacing = _merge_rules(default.spacing_rules, override.spacing_rules, "spacing_rules", problems)

    only_authorised = default.only_authorised_channels
    if override.only_authorised_channels is not None:
        if only_authorised and not override.only_authorised_channels:
            problems.append(
                f"only_authorised_channels: the country default ({default.policy_id}) allows "
                "only channels the debtor authorised"
            )
        only_authorised = only_authorised or override.only_authorised_channels

    max_deferral = default.max_deferral_days
    if override.max_deferral_days is not None:
        # Dropping sooner means contacting less: a shorter deferral is the stricter one.
        if override.max_deferral_days > default.max_deferral_days:
            problems.append(
                f"max_deferral_days: {override.max_deferral_days} is longer than the country "
                f"default {default.max_deferral_days}"
            )
        max_deferral = min(max_deferral, override.max_deferral_days)

    if problems:
        raise LooserThanCountryDefault(problems)
    return ContactPolicy(
        policy_id=f"{default.policy_id}+{tenant_id}",
        country=default.country,
        legal_source=default.legal_source,
        notes=default.notes,
        hours=hours,
        hours_rule_id=f"tenant.{tenant_id}.contact-hours"
        if hours_changed
        else default.hours_rule_id,
        skip_public_holidays=skip_holidays,
        holidays_rule_id=default.holidays_rule_id
        if default.skip_public_holidays or not skip_holidays
        else f"tenant.{tenant_id}.public-holidays",
        frequency_caps=caps,
        spacing_rules=spacing,
        only_authorised_channels=only_authorised,
        blocked_channels=default.blocked_channels | override.blocked_channels,
        max_deferral_days=max_deferral,
    )


Rule = TypeVar("Rule", FrequencyCap, SpacingRule)


def _merge_rules(
    defaults: tuple[Rule, ...], overrides: tuple[Rule, ...], path: str, problems: list[str]
) -> tuple[Rule, ...]:
    merged = {rule.rule_id: rule for rule in defaults}
    for index, rule in enumerate(overrides):
        country_rule = next((d for d in defaults if d.rule_id == rule.rule_id), None)
        if country_rule is not None and not rule.at_least_as_strict_as(country_rule):
            problems.append(
                f"{path}[{index}] ({rule.rule_id}): looser than the country default "
                f"{country_rule.model_dump(mode='json', exclude={'description'})}"
            )
            continue
        merged[rule.rule_id] = rule
    return tuple(merged.values())


# --- Country defaults -------------------------------------------------------------------------
# Research defaults, not legal advice (see docs/strategies-and-contact-policy.md). The same shape a
# YAML document would have: `parse_policy_document` reads one.

_WEEKDAYS_ONLY = ("mon", "tue", "wed", "thu", "fri")
_MON_TO_SAT = (*_WEEKDAYS_ONLY, "sat")
_EVERY_DAY = (*_MON_TO_SAT, "sun")


def _hours(days: Iterable[str], start: str, end: str) -> dict[str, dict[str, str]]:
    return {day: {"start": start, "end": end} for day in days}


COUNTRY_DEFAULTS_DOCUMENT: dict[str, dict[str, Any]] = {
    "US": {
        "policy_id": "us.reg-f",
        "country": "US",
        "legal_source": "CFPB Regulation F, 12 CFR 1006.6(b)(1)(i) (8 a.m.–9 p.m. local time) "
        "and 1006.14(b)(2) (call frequency presumptions)",
        "notes": "Every electronic message must carry an opt-out notice (1006.6(e)); the "
        "notifier's templates do that. Holidays are not restricted by Reg F.",
        "hours": _hours(_EVERY_DAY, "08:00", "21:00"),
        "skip_public_holidays": False,
        "frequency_caps": [
            {
                "rule_id": "us.reg-f.calls-7-in-7-days",
                "description": "More than 7 calls within 7 consecutive days is presumed harassment.",
                "channels": sorted(CALL_CHANNELS),
                "limit": 7,
                "window": "rolling_days",
                "length": 7,
            }
        ],
        "spacing_rules": [
            {
                "rule_id": "us.reg-f.call-after-conversation",
                "description": "No call within 7 days after a telephone conversation.",
                "channels": sorted(CALL_CHANNELS),
                "after": "conversation",
                "min_gap_hours": 7 * 24,
            }
        ],
    },
    "MX": {
        "policy_id": "mx.condusef",
        "country": "MX",
        "legal_source": "CONDUSEF, Disposiciones de carácter general aplicables a las entidades "
        "financieras en materia de despachos de cobranza; PROFECO",
        "notes": "07:00–22:00, Monday to Friday by default. Caller id never hidden, no third "
        "parties except guarantors, agencies registered in REDECO (outside this policy).",
        "hours": _hours(_WEEKDAYS_ONLY, "07:00", "22:00"),
        "skip_public_holidays": True,
    },
    "CO": {
        "policy_id": "co.ley-2300-2023",
        "country": "CO",
        "legal_source": "Ley 2300 de 2023 (Colombia), artículo 3",
        "hours": {
            **_hours(_WEEKDAYS_ONLY, "07:00", "19:00"),
            **_hours(["sat"], "08:00", "15:00"),
        },
        "skip_public_holidays": True,
        "only_authorised_channels": True,
        "frequency_caps": [
            {
                "rule_id": "co.one-contact-per-day",
                "description": "At most one contact a day.",
                "limit": 1,
                "window": "local_days",
                "length": 1,
            },
            {
                "rule_id": "co.one-channel-per-week",
                "description": "Not several channels in the same week.",
                "counts": "channels",
                "limit": 1,
                "window": "local_weeks",
                "length": 1,
            },
        ],
    },
    "AR": {
        "policy_id": "ar.ley-24240",
        "country": "AR",
        "legal_source": "Ley 24.240 art. 8 bis (trato digno); CABA Ley 6171",
        "notes": "Hours are a conservative default (not confirmed by the statute). No message "
        "may look like court papers (templates' concern).",
        "hours": _hours(_WEEKDAYS_ONLY, "09:00", "20:00"),
        "skip_public_holidays": True,
    },
    "PE": {
        "policy_id": "pe.ley-29571",
        "country": "PE",
        "legal_source": "Ley 29571, Código de Protección y Defensa del Consumidor, art. 62 "
        "lit. b (checked against the article's text)",
        "notes": "The article forbids visits and phone calls between 20:00 and 07:00 and on "
        "Saturdays, Sundays and holidays; this default applies those hours to every channel, "
        "the cautious reading.",
        "hours": _hours(_WEEKDAYS_ONLY, "07:00", "20:00"),
        "skip_public_holidays": True,
    },
    "CL": {
        "policy_id": "cl.ley-19496",
        "country": "CL",
        "legal_source": "Ley 19.496 art. 37 as amended by Ley 21.320 (2021); hours are the "
        "días y horas hábiles of art. 59 Código de Procedimiento Civil (checked against "
        "summaries of the amended text)",
        "notes": "Monday to Saturday 08:00–20:00; one call or visit a week; at most two other "
        "remote contacts (SMS, email, messaging) a week, two days apart. 'A week' is read as "
        "7 rolling days.",
        "hours": _hours(_MON_TO_SAT, "08:00", "20:00"),
        "skip_public_holidays": True,
        "frequency_caps": [
            {
                "rule_id": "cl.one-call-or-visit-per-week",
                "description": "At most one call or visit a week.",
                "channels": sorted((*CALL_CHANNELS, ContactChannel.FIELD_VISIT)),
                "limit": 1,
                "window": "rolling_days",
                "length": 7,
            },
            {
                "rule_id": "cl.two-messages-per-week",
                "description": "At most two remote messages a week.",
                "channels": ["email", "sms", "whatsapp"],
                "limit": 2,
                "window": "rolling_days",
                "length": 7,
            },
        ],
        "spacing_rules": [
            {
                "rule_id": "cl.messages-two-days-apart",
                "description": "Remote messages at least two days apart.",
                "channels": ["email", "sms", "whatsapp"],
                "min_gap_hours": 48,
            }
        ],
    },
}

# Where no country default exists: a cautious policy, so an unknown country is not contacted freely.
FALLBACK_POLICY_DOCUMENT: dict[str, Any] = {
    "policy_id": "default.cautious",
    "country": None,
    "legal_source": "none: cautious default for countries without a researched policy",
    "hours": _hours(_WEEKDAYS_ONLY, "09:00", "19:00"),
    "skip_public_holidays": True,
    "frequency_caps": [
        {
            "rule_id": "default.one-contact-per-day",
            "limit": 1,
            "window": "local_days",
            "length": 1,
        }
    ],
}


@cache
def country_defaults() -> Mapping[str, ContactPolicy]:
    return {
        country: ContactPolicy.model_validate(document)
        for country, document in COUNTRY_DEFAULTS_DOCUMENT.items()
    }


@cache
def fallback_policy() -> ContactPolicy:
    return ContactPolicy.model_validate(FALLBACK_POLICY_DOCUMENT)


def default_policy_for(country: str) -> ContactPolicy:
    return country_defaults().get(country) or fallback_policy()


def parse_policy_document(text: str) -> ContactPolicy:
    """A country policy written as YAML (or JSON, which is YAML)."""
    return ContactPolicy.model_validate(yaml.safe_load(text))


def parse_tenant_override(text: str) -> TenantPolicyOverride:
    return TenantPolicyOverride.model_validate(yaml.safe_load(text))


# --- Deciding -----------------------------------------------------------------------------------


class HoldKind(StrEnum):
    DO_NOT_CONTACT = "do_not_contact"
    DISPUTE = "dispute"
    HARDSHIP = "hardship"


@dataclass(frozen=True, slots=True)
class Hold:
    """A stop on collection: active from `since` until `until` (open-ended when None)."""

    kind: HoldKind
    since: datetime
    until: datetime | None = None

    def active_at(self, instant: datetime) -> bool:
        return self.since <= instant and (self.until is None or instant < self.until)

    def stops(self, channel: ContactChannel) -> bool:
        # Do-not-contact ends communication, not the creditor's right to go to court; a dispute
        # or hardship hold stops collection altogether.
        return self.kind is not HoldKind.DO_NOT_CONTACT or channel in CONTACT_CHANNELS


@dataclass(frozen=True, slots=True)
class DebtorContactContext:
    country: str
    time_zone: str
    opted_out_channels: frozenset[ContactChannel] = frozenset()
    # Channels the debtor authorised; None when no authorisation was recorded.
    authorised_channels: frozenset[ContactChannel] | None = None
    holds: tuple[Hold, ...] = ()


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """A past contact attempt on the debtor; `conversation` when the debtor was actually reached."""

    at: datetime
    channel: ContactChannel
    conversation: bool = False


@dataclass(frozen=True, slots=True)
class ProposedAction:
    channel: ContactChannel
    at: datetime
    # Past this instant the action is pointless (e.g. a reminder before a due date).
    expires_at: datetime | None = None


class Verdict(StrEnum):
    ALLOWED = "allowed"
    MOVED = "moved"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class RuleHit:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided, with the rule that decided it.

    `at` is when the action may happen (the requested time when allowed, the new slot when moved,
    None when dropped). `trail` lists every rule that pushed the action, in order.
    """

    verdict: Verdict
    rule_id: str
    reason: str
    requested_at: datetime
    at: datetime | None
    policy_id: str
    trail: tuple[RuleHit, ...] = field(default=())

    @property
    def may_contact(self) -> bool:
        return self.verdict is not Verdict.DROPPED


ALLOWED_RULE_ID = "allowed"


def decide(
    action: ProposedAction,
    debtor: DebtorContactContext,
    history: Sequence[ContactRecord],
    now: datetime,
    *,
    policy: ContactPolicy,
) -> Decision:
    """Allow, move or drop one action for one debtor. Pure and deterministic."""
    _require_aware(action.at, "action.at")
    _require_aware(now, "now")
    zone = ZoneInfo(debtor.time_zone)
    requested = max(action.at, now).astimezone(UTC)
    channel = action.channel

    def dropped(rule_id: str, reason: str, trail: tuple[RuleHit, ...] = ()) -> Decision:
        return Decision(Verdict.DROPPED, rule_id, reason, requested, None, policy.policy_id, trail)

    for hold in debtor.holds:
        if hold.active_at(requested) and hold.stops(channel):
            until = f" until {_local(hold.until, zone)}" if hold.until else ""
            return dropped(
                f"hold.{hold.kind.value}",
                f"{hold.kind.value.replace('_', '-')} hold since {_local(hold.since, zone)}{until}",
            )
    if channel not in CONTACT_CHANNELS:
        return Decision(
            Verdict.ALLOWED,
            ALLOWED_RULE_ID,
            f"{channel.value} does not contact the debtor; contact rules do not apply",
            requested,
            requested,
            policy.policy_id,
        )
    if channel in policy.blocked_channels:
        return dropped(
            f"{policy.policy_id}.blocked-channel",
            f"{channel.value} is not used under policy {policy.policy_id}",
        )
    if channel in debtor.opted_out_channels:
        return dropped(f"opt-out.{channel.value}", f"the debtor opted out of {channel.value}")
    if policy.only_authorised_channels and (
        debtor.authorised_channels is None or channel not in debtor.authorised_channels
    ):
        known = (
            "no channel authorisation is recorded"
            if debtor.authorised_channels is None
            else "authorised: "
            + (", ".join(sorted(c.value for c in debtor.authorised_channels)) or "none")
        )
        return dropped(
            f"{(policy.country or 'default').lower()}.authorised-channels",
            f"{channel.value} was not authorised by the debtor ({known})",
        )

    horizon_days = min(policy.max_deferral_days, ABSOLUTE_MAX_DEFERRAL_DAYS)
    deadline = requested + timedelta(days=horizon_days)
    if action.expires_at is not None:
        deadline = min(deadline, action.expires_at.astimezone(UTC))
    past = [record for record in history if record.at.astimezone(UTC) <= requested]
    checks = _checks(policy, debtor.country, zone, channel, past)

    slot = requested
    trail: list[RuleHit] = []
    for _ in range(_MAX_SLOT_SEARCH_STEPS):
        pushed = next((found for check in checks if (found := check(slot)) is not None), None)
        if pushed is None:
            break
        later, hit = pushed
        trail.append(hit)
        slot = max(later, slot + timedelta(minutes=1))
        if slot > deadline:
            limit = (
                "the action expires at " + _local(deadline, zone)
                if action.expires_at is not None and deadline == action.expires_at
                else f"it cannot be moved more than {horizon_days} days"
            )
            return dropped(
                hit.rule_id,
                f"{hit.reason}; no allowed slot before {_local(deadline, zone)} ({limit})",
                tuple(trail),
            )
    else:  # pragma: no cover - the deadline ends the search long before this
        return dropped(trail[-1].rule_id, "no allowed slot found", tuple(trail))

    if not trail:
        return Decision(
            Verdict.ALLOWED,
            ALLOWED_RULE_ID,
            f"{channel.value} at {_local(requested, zone)} breaks no rule of {policy.policy_id}",
            requested,
            requested,
            policy.policy_id,
        )
    reasons = "; then ".join(f"{hit.reason} [{hit.rule_id}]" for hit in trail)
    return Decision(
        Verdict.MOVED,
        trail[0].rule_id,
        f"moved to {_local(slot, zone)}: {reasons}",
        requested,
        slot,
        policy.policy_id,
        tuple(trail),
    )


def relevant_history(
    action: ProposedAction,
    debtor: DebtorContactContext,
    history: Sequence[ContactRecord],
    now: datetime,
    *,
    policy: ContactPolicy,
) -> tuple[ContactRecord, ...]:
    """The contacts of `history` that can change `decide`'s answer for `action`: those before
    the requested instant that still count towards a cap on its channel, or still hold a spacing
    gap, at that instant (slots are only searched later). `decide` answers the same on them as on
    the whole history, so debtors whose old contacts differ can share one decision."""
    if not history:
        return ()
    requested = max(action.at, now).astimezone(UTC)
    zone = ZoneInfo(debtor.time_zone)
    caps = [cap for cap in policy.frequency_caps if action.channel in cap.scope()]
    spacings = [rule for rule in policy.spacing_rules if action.channel in rule.scope()]

    def counts(record: ContactRecord) -> bool:
        # Loops rather than any() over generators: planning the day asks this a million times.
        for cap in caps:
            if record.channel in cap.scope() and _expiry(cap, zone, record.at) > requested:
                return True
        for rule in spacings:
            if (
                record.channel in rule.scope()
                and (rule.after == "contact" or record.conversation)
                and record.at.astimezone(UTC) + timedelta(hours=rule.min_gap_hours) > requested
            ):
                return True
        return False

    return tuple(
        record for record in history if record.at.astimezone(UTC) <= requested and counts(record)
    )


# A rule check: None when the instant is fine, else the earliest instant worth trying and why.
Check = Callable[[datetime], tuple[datetime, RuleHit] | None]


def _checks(
    policy: ContactPolicy,
    country: str,
    zone: ZoneInfo,
    channel: ContactChannel,
    history: Sequence[ContactRecord],
) -> list[Check]:
    checks: list[Check] = [partial(_hours_check, policy, country, zone)]
    checks += [
        partial(_cap_check, cap, zone, channel, history)
        for cap in policy.frequency_caps
        if channel in cap.scope()
    ]
    checks += [
        partial(_spacing_check, rule, zone, history)
        for rule in policy.spacing_rules
        if channel in rule.scope()
    ]
    return checks


def _hours_check(
    policy: ContactPolicy, country: str, zone: ZoneInfo, instant: datetime
) -> tuple[datetime, RuleHit] | None:
    local = instant.astimezone(zone)
    today = local.date()
    window = _open_window(policy, country, today)
    if window is not None and window.contains(local.time()):
        return None

    if window is not None and local.time() < window.start:
        next_open = _wall_instant(today, window.start, zone)
        rule_id = policy.hours_rule_id
        reason = f"{local:%H:%M} is before contact hours {window} on {_day_name(today)}"
    else:
        next_open = _next_opening(policy, country, today + timedelta(days=1), zone)
        holiday = _holiday_name(country, today) if policy.skip_public_holidays else None
        if holiday is not None:
            rule_id = policy.holidays_rule_id
            reason = f"{today.isoformat()} is a public holiday in {country} ({holiday})"
        elif Weekday.of(today) not in policy.hours:
            rule_id = policy.hours_rule_id
            reason = f"no contact on {_day_name(today)}s"
        else:
            rule_id = policy.hours_rule_id
            reason = f"{local:%H:%M} is after contact hours {window} on {_day_name(today)}"
    return next_open, RuleHit(rule_id, reason)


def _open_window(policy: ContactPolicy, country: str, day: date) -> ContactWindow | None:
    window = policy.hours.get(Weekday.of(day))
    if window is None:
        return None
    if policy.skip_public_holidays and _holiday_name(country, day) is not None:
        return None
    return window


def _next_opening(policy: ContactPolicy, country: str, first_day: date, zone: ZoneInfo) -> datetime:
    for offset in range(366):
        day = first_day + timedelta(days=offset)
        window = _open_window(policy, country, day)
        if window is not None:
            return _wall_instant(day, window.start, zone)
    # A policy with no open day at all: never. The deadline turns this into a drop.
    return datetime.max.replace(tzinfo=UTC) - timedelta(days=ABSOLUTE_MAX_DEFERRAL_DAYS + 1)


def _cap_check(
    cap: FrequencyCap,
    zone: ZoneInfo,
    channel: ContactChannel,
    history: Sequence[ContactRecord],
    instant: datetime,
) -> tuple[datetime, RuleHit] | None:
    in_window = [
        (record, expiry)
        for record in history
        if record.channel in cap.scope() and (expiry := _expiry(cap, zone, record.at)) > instant
    ]
    window_text = _window_text(cap)
    if cap.counts == "contacts":
        if len(in_window) < cap.limit:
            return None
        expiries = sorted(expiry for _, expiry in in_window)
        free_at = expiries[len(in_window) - cap.limit]
        reason = f"{len(in_window)} contact(s) already {window_text}, limit {cap.limit}"
        return free_at, RuleHit(cap.rule_id, reason)

    last_expiry_per_channel: dict[ContactChannel, datetime] = {}
    for record, expiry in in_window:
        if expiry > last_expiry_per_channel.get(record.channel, instant):
            last_expiry_per_channel[record.channel] = expiry
    used = set(last_expiry_per_channel) | {channel}
    if len(used) <= cap.limit:
        return None
    others = sorted(
        expiry
        for used_channel, expiry in last_expiry_per_channel.items()
        if used_channel != channel
    )
    free_at = others[len(used) - cap.limit - 1]
    names = ", ".join(sorted(c.value for c in last_expiry_per_channel))
    reason = (
        f"{channel.value} would be channel number {len(used)} {window_text} "
        f"(already used: {names}), limit {cap.limit}"
    )
    return free_at, RuleHit(cap.rule_id, reason)


def _spacing_check(
    rule: SpacingRule, zone: ZoneInfo, history: Sequence[ContactRecord], instant: datetime
) -> tuple[datetime, RuleHit] | None:
    gap = timedelta(hours=rule.min_gap_hours)
    triggers = [
        record.at.astimezone(UTC)
        for record in history
        if record.channel in rule.scope() and (rule.after == "contact" or record.conversation)
    ]
    if not triggers:
        return None
    last = max(triggers)
    if instant >= last + gap:
        return None
    what = "a conversation" if rule.after == "conversation" else "a contact"
    reason = f"{what} at {_local(last, zone)} requires a gap of {rule.min_gap_hours} hours"
    return last + gap, RuleHit(rule.rule_id, reason)


def _expiry(cap: FrequencyCap, zone: ZoneInfo, contact_at: datetime) -> datetime:
    """When a contact stops counting towards the cap."""
    if cap.window is WindowKind.ROLLING_DAYS:
        return contact_at.astimezone(UTC) + timedelta(days=cap.length)
    local_day = contact_at.astimezone(zone).date()
    if cap.window is WindowKind.LOCAL_DAYS:
        return _wall_instant(local_day + timedelta(days=cap.length), time(0), zone)
    monday = local_day - timedelta(days=local_day.weekday())
    return _wall_instant(monday + timedelta(weeks=cap.length), time(0), zone)


def _window_text(cap: FrequencyCap) -> str:
    if cap.window is WindowKind.ROLLING_DAYS:
        return f"in the last {cap.length} day(s)"
    if cap.window is WindowKind.LOCAL_DAYS:
        return "today" if cap.length == 1 else f"in the last {cap.length} calendar days"
    return "this week" if cap.length == 1 else f"in the last {cap.length} calendar weeks"


def _wall_instant(day: date, wall_time: time, zone: ZoneInfo) -> datetime:
    """The UTC instant a wall-clock time occurs on a local day.

    A wall time skipped by a daylight-saving jump (e.g. 00:00 in Santiago on the spring-forward
    night) resolves to the first instant after the jump; a repeated one to its first occurrence.
    """
    return datetime.combine(day, wall_time, tzinfo=zone).astimezone(UTC)


@lru_cache(maxsize=512)
def _holidays_of(country: str, year: int) -> Mapping[date, str]:
    if country not in _supported_countries():
        return {}
    return dict(holidays.country_holidays(country, years=year).items())


@cache
def _supported_countries() -> frozenset[str]:
    return frozenset(holidays.list_supported_countries())


def _holiday_name(country: str, day: date) -> str | None:
    return _holidays_of(country, day.year).get(day)


def is_public_holiday(country: str, day: date) -> bool:
    return _holiday_name(country, day) is not None


def _day_name(day: date) -> str:
    return _WEEKDAY_NAMES[Weekday.of(day)]


def _local(instant: datetime, zone: ZoneInfo) -> str:
    return f"{instant.astimezone(zone):%Y-%m-%d %H:%M %Z} ({zone.key})"


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")

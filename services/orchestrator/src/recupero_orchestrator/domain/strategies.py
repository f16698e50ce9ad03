"""Tenant strategies: versioned documents of ordered, conditional steps, and the planner that walks
a debtor through one.

A strategy reacts to what happened rather than repeating a calendar: a step whose message was not
delivered (or read) in time falls back to the next channel, a reply stops the strategy and hands the
debtor to an agent, a balance above a threshold creates an agent task, an open promise pauses
everything until the promise is judged.

The planner is pure and idempotent: `plan(strategy, state, now)` looks at what already happened
(`DebtorState.records`) and proposes what should happen next, each proposal with a stable `key`.
Whoever wires it in stores proposals under that key (a unique constraint makes re-planning
harmless) and, when a proposal comes due, re-plans and fires it only if the same key is still
proposed: a step's conditions are judged when it comes due, and a delivery receipt that arrived in
the meantime cancels the fallback it would have triggered.

Champion/challenger: `assign_variant` splits a segment's debtors between strategy variants by a
stable hash; `wilson_interval` gives each variant's rates a confidence interval.
"""

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from statistics import NormalDist
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from recupero_events import Money
from recupero_orchestrator.domain.channels import ChannelField, ContactChannel
from recupero_orchestrator.domain.promises import (
    DEFAULT_GRACE_DAYS,
    Promise,
    PromiseOutcome,
    ReceivedPayment,
    evaluate_promise,
    latest_promise,
)

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", min_length=1, max_length=64)]

# --- The document -------------------------------------------------------------------------------


class TimingAnchor(StrEnum):
    """What a step's `days` count from."""

    DUE_DATE = "due_date"  # the oldest unpaid document's due date; negative days = before it
    SEGMENT_ENTRY = "segment_entry"  # when the debtor entered the segment
    PREVIOUS_STEP = "previous_step"  # when the previous step happened


class StepTiming(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    anchor: TimingAnchor
    days: Annotated[int, Field(ge=-365, le=365)] = 0
    local_time: time = Field(
        default=time(10, 0),
        description="Wall-clock time in the debtor's time zone; the contact policy may still move "
        "the action.",
    )

    @model_validator(mode="after")
    def _days_not_negative_after_events(self) -> Self:
        if self.days < 0 and self.anchor is not TimingAnchor.DUE_DATE:
            raise ValueError(f"days cannot be negative when counted from {self.anchor.value}")
        return self


class NoOpenPromise(BaseModel):
    """Only while the debtor has no pending promise to pay."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["no_open_promise"]


class BalanceAbove(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["balance_above"]
    amount: Money


class BalanceAtMost(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["balance_at_most"]
    amount: Money


class DaysPastDueAtLeast(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["days_past_due_at_least"]
    days: int


Condition = Annotated[
    NoOpenPromise | BalanceAbove | BalanceAtMost | DaysPastDueAtLeast, Field(discriminator="kind")
]


class Fallback(BaseModel):
    """Channels to try in order when the step's message is not delivered (or read) in time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: tuple[ChannelField, ...] = Field(min_length=1)
    when: Literal["not_delivered", "not_read"] = "not_delivered"
    within_hours: PositiveInt = 24


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    step_id: Slug
    timing: StepTiming
    channel: ChannelField
    template: str = Field(min_length=1)
    when: tuple[Condition, ...] = Field(
        default=(),
        description="All must hold when the step comes due; otherwise it is skipped.",
    )
    fallback: Fallback | None = None

    def channels(self) -> tuple[ContactChannel, ...]:
        return (self.channel, *(self.fallback.channels if self.fallback else ()))


class Repeat(BaseModel):
    """After the last step, run the steps from `from_step` again, `every_days` after the previous
    round's `from_step` happened, at most `max_rounds` more times (until an end condition if null)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_step: Slug
    every_days: PositiveInt
    max_rounds: PositiveInt | None = None


class EndConditions(BaseModel):
    """Beyond a settled balance, which always ends a strategy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_days_in_segment: PositiveInt | None = None
    max_contacts: PositiveInt | None = None
    balance_at_most: Money | None = None


class Reactions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    on_reply: Literal["stop_and_hand_to_agent", "continue"] = "stop_and_hand_to_agent"
    agent_task_when_balance_above: Money | None = None
    promise_grace_days: Annotated[int, Field(ge=0, le=60)] = DEFAULT_GRACE_DAYS
    on_broken_promise: Literal["resume", "hand_to_agent"] = Field(
        default="hand_to_agent",
        description="What follows a broken or partially kept promise: the strategy goes on, or "
        "stops and an agent takes the debtor.",
    )


class StrategyDocument(BaseModel):
    """One version of a tenant's strategy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy_id: Slug
    version: PositiveInt
    name: str = Field(min_length=1)
    description: str = ""
    segments: tuple[str, ...] = Field(default=(), description="Segments it is attached to.")
    steps: tuple[Step, ...] = Field(min_length=1)
    repeat: Repeat | None = None
    end: EndConditions = EndConditions()
    reactions: Reactions = Reactions()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        seen: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.step_id in seen:
                problems.append(f"steps[{index}].step_id: duplicate step id {step.step_id!r}")
            seen.add(step.step_id)
            channels = step.channels()
            for position, channel in enumerate(channels[1:]):
                if channel in channels[: position + 1]:
                    problems.append(
                        f"steps[{index}].fallback.channels[{position}]: channel {channel.value!r} "
                        "is already tried before in this step"
                    )
        if self.steps[0].timing.anchor is TimingAnchor.PREVIOUS_STEP:
            problems.append("steps[0].timing.anchor: the first step has no previous step")
        if self.repeat is not None:
            ids = [step.step_id for step in self.steps]
            if self.repeat.from_step not in ids:
                problems.append(f"repeat.from_step: unknown step {self.repeat.from_step!r}")
            else:
                start = ids.index(self.repeat.from_step)
                for index in range(start + 1, len(self.steps)):
                    if self.steps[index].timing.anchor is not TimingAnchor.PREVIOUS_STEP:
                        problems.append(
                            f"steps[{index}].timing.anchor: a repeated step after "
                            f"{self.repeat.from_step!r} must be timed from the previous step"
                        )
        if len(set(self.segments)) != len(self.segments):
            problems.append("segments: a segment is listed twice")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def reference(self) -> str:
        return f"{self.strategy_id}@{self.version}"


class StrategyInvalid(ValueError):
    """A strategy document that does not validate; `errors` name the path of every problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(self.errors))


def parse_strategy(document: Mapping[str, Any] | str) -> StrategyDocument:
    """Validate a strategy given as a mapping or YAML/JSON text; errors read `steps[2].channel: …`."""
    data = yaml.safe_load(document) if isinstance(document, str) else document
    try:
        return StrategyDocument.model_validate(data)
    except ValidationError as error:
        raise StrategyInvalid(_readable(error)) from None


def _readable(error: ValidationError) -> list[str]:
    messages: list[str] = []
    for detail in error.errors():
        message = detail["msg"].removeprefix("Value error, ")
        path = _path(detail["loc"])
        for line in message.splitlines():
            # Cross-field checks already start with the path they are about.
            messages.append(line if not path else f"{path}: {line}")
    return messages


def _path(location: Sequence[int | str]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else ("." if path else "") + part
    return path


# --- Champion / challenger ----------------------------------------------------------------------


class VariantShare(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy_id: Slug
    percent: Annotated[int, Field(ge=1, le=100)]


class SegmentStrategies(BaseModel):
    """The strategy variants a segment runs, with the share of its debtors each gets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    segment: str = Field(min_length=1)
    variants: tuple[VariantShare, ...] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _adds_up(cls, variants: tuple[VariantShare, ...]) -> tuple[VariantShare, ...]:
        ids = [variant.strategy_id for variant in variants]
        if len(set(ids)) != len(ids):
            raise ValueError("a strategy appears twice among the variants")
        total = sum(variant.percent for variant in variants)
        if total != 100:
            raise ValueError(f"percentages add up to {total}, not 100")
        return variants


_BUCKETS = 10_000


def variant_bucket(tenant_id: str, debtor_id: str, segment: str) -> int:
    """A debtor's place in [0, 10000) for a segment: the same in every process and release."""
    digest = hashlib.blake2b(
        "\x1f".join((tenant_id, segment, debtor_id)).encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % _BUCKETS


def assign_variant(
    tenant_id: str, debtor_id: str, segment: str, variants: Sequence[VariantShare]
) -> str:
    """The variant a debtor entering `segment` gets. Deterministic; unchanged percentages give
    everyone the same variant again (the assignment is also stored, so debtors keep it)."""
    if not variants:
        raise ValueError("a segment needs at least one strategy variant")
    bucket = variant_bucket(tenant_id, debtor_id, segment)
    upper = 0
    for variant in variants:
        upper += variant.percent * _BUCKETS // 100
        if bucket < upper:
            return variant.strategy_id
    return variants[-1].strategy_id


@dataclass(frozen=True, slots=True)
class RateEstimate:
    successes: int
    trials: int
    rate: float
    low: float
    high: float
    confidence: float


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> RateEstimate:
    """Rate with its Wilson score interval: sound for small samples and rates near 0 or 1."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError("need 0 <= successes <= trials")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    if trials == 0:
        return RateEstimate(0, 0, 0.0, 0.0, 1.0, confidence)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    half_width /= denominator
    return RateEstimate(
        successes,
        trials,
        rate,
        max(0.0, centre - half_width),
        min(1.0, centre + half_width),
        confidence,
    )


@dataclass(frozen=True, slots=True)
class VariantResults:
    """What one variant achieved with the debtors assigned to it."""

    strategy_id: str
    debtors: int
    cured: int
    contacted: int
    promises_made: int
    promises_kept: int
    collected: Money
    cost: Money

    def cure_rate(self, confidence: float = 0.95) -> RateEstimate:
        return wilson_interval(self.cured, self.debtors, confidence)

    def contact_rate(self, confidence: float = 0.95) -> RateEstimate:
        return wilson_interval(self.contacted, self.debtors, confidence)

    def promise_kept_rate(self, confidence: float = 0.95) -> RateEstimate:
        return wilson_interval(self.promises_kept, self.promises_made, confidence)


# --- The debtor's progress ----------------------------------------------------------------------


class ActionKind(StrEnum):
    CONTACT = "contact"  # a step's action; goes through the contact policy, then `action-due`
    AGENT_TASK = "agent_task"  # work for an agent's queue
    SKIP = "skip"  # a step that will not happen, recorded so supervisors see why


class ActionStatus(StrEnum):
    PLANNED = "planned"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"  # the provider could not deliver
    DROPPED = "dropped"  # the contact policy refused it
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    DONE = "done"  # an agent task closed


_REACHED = frozenset({ActionStatus.SENT, ActionStatus.DELIVERED, ActionStatus.READ})

# The planner's values below are treated as immutable (nothing assigns to their fields; a change
# is a new value, as `dataclasses.replace` makes) and hash by value, but are not `frozen`: a
# frozen dataclass sets each field through `object.__setattr__`, which made building them four
# times as costly, and planning the day builds several for each of a million debtors.


@dataclass(slots=True, unsafe_hash=True)
class ActionRecord:
    """What became of an action the planner proposed (stored by the service under `key`)."""

    key: str
    kind: ActionKind
    status: ActionStatus
    planned_for: datetime
    step_id: str | None = None
    round: int = 0
    attempt: int = 0
    channel: ContactChannel | None = None
    # When it was sent, failed, dropped or skipped.
    happened_at: datetime | None = None


@dataclass(slots=True, unsafe_hash=True)
class DebtorState:
    """Everything the planner needs about one debtor in the strategy's segment."""

    tenant_id: str
    debtor_id: str
    segment: str
    entered_segment_at: datetime
    time_zone: str
    oldest_due_on: date
    days_past_due: int
    balance: Money
    records: tuple[ActionRecord, ...] = ()
    promises: tuple[Promise, ...] = ()
    payments: tuple[ReceivedPayment, ...] = ()
    replied_at: datetime | None = None


class PlanStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # an open promise; nothing is contacted until `resume_at`
    STOPPED = "stopped"  # handed to an agent
    FINISHED = "finished"  # balance settled, an end condition met, or no step left


@dataclass(slots=True, unsafe_hash=True)
class PlannedAction:
    key: str
    kind: ActionKind
    due_at: datetime
    reason: str
    template: str
    step_id: str | None = None
    round: int = 0
    attempt: int = 0
    channel: ContactChannel | None = None
    expires_at: datetime | None = None


@dataclass(slots=True, unsafe_hash=True)
class Plan:
    """The planner's answer. Actions still pending from earlier plans whose key is not proposed
    again should be cancelled when the status is not ACTIVE."""

    status: PlanStatus
    reason: str
    actions: tuple[PlannedAction, ...] = ()
    resume_at: datetime | None = None


def next_actions(
    strategy: StrategyDocument, state: DebtorState, now: datetime
) -> list[PlannedAction]:
    return list(plan(strategy, state, now).actions)


def key_prefix(strategy: StrategyDocument, state: DebtorState) -> str:
    """Keys are per strategy version and per segment entry: a new entry starts a clean slate."""
    return entry_key_prefix(strategy, state.entered_segment_at)


def entry_key_prefix(strategy: StrategyDocument, entered_segment_at: datetime) -> str:
    """`key_prefix` of a debtor who entered the segment at `entered_segment_at`."""
    reference = compiled(strategy).reference
    # Asked for twice in a row for each debtor when a whole portfolio is planned (by the caller,
    # then by `plan`); entries differ from debtor to debtor, so only the last one is kept.
    last = _LAST_PREFIX[0]
    if last[0] == reference and last[1] == entered_segment_at:
        return last[2]
    at = entered_segment_at.astimezone(UTC)
    # %-formatting costs half of strftime's %Y%m%dT%H%M%SZ (or of f-string specifiers), for
    # the same text.
    prefix = "%s/%04d%02d%02dT%02d%02d%02dZ" % (  # noqa: UP031
        reference,
        at.year,
        at.month,
        at.day,
        at.hour,
        at.minute,
        at.second,
    )
    # One assignment of a whole tuple: a reader sees an old entry or a new one, never a mix.
    _LAST_PREFIX[0] = (reference, entered_segment_at, prefix)
    return prefix


_LAST_PREFIX: list[tuple[str, datetime | None, str]] = [("", None, "")]


@dataclass(frozen=True, slots=True)
class CompiledStrategy:
    """What planning reads of a strategy document, worked out once per document rather than
    once per debtor (planning the day asks for it a million times)."""

    reference: str
    # The index of the step a repeat round starts from.
    repeat_from: int | None
    # Per step: where it stands in the document, as reasons name it.
    places: tuple[str, ...]
    # Per step: the reason its first round's contact is proposed for.
    contact_reasons: tuple[str, ...]
    # Each step's first channel, by step id.
    channels: Mapping[str, ContactChannel]


# Documents by identity; an entry holds its document, so an id is not reused while listed.
_COMPILED: dict[int, tuple[StrategyDocument, CompiledStrategy]] = {}
_COMPILED_LIMIT = 256


def compiled(strategy: StrategyDocument) -> CompiledStrategy:
    entry = _COMPILED.get(id(strategy))
    if entry is not None and entry[0] is strategy:
        return entry[1]
    ids = [step.step_id for step in strategy.steps]
    result = CompiledStrategy(
        reference=strategy.reference,
        repeat_from=ids.index(strategy.repeat.from_step) if strategy.repeat else None,
        places=tuple(f"steps[{index}] {step_id!r}" for index, step_id in enumerate(ids)),
        contact_reasons=tuple(
            f"steps[{index}] {step.step_id!r} on {step.channel.value}"
            for index, step in enumerate(strategy.steps)
        ),
        channels={step.step_id: step.channel for step in strategy.steps},
    )
    if len(_COMPILED) >= _COMPILED_LIMIT:
        _COMPILED.clear()
    _COMPILED[id(strategy)] = (strategy, result)
    return result


def plan(strategy: StrategyDocument, state: DebtorState, now: datetime) -> Plan:
    """What should happen next for this debtor under this strategy. Pure and idempotent."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    prefix = key_prefix(strategy, state)
    reactions = strategy.reactions

    def task(name: str, template: str, reason: str) -> tuple[PlannedAction, ...]:
        key = f"{prefix}/task/{name}"
        if any(record.key == key for record in state.records):
            return ()
        return (PlannedAction(key, ActionKind.AGENT_TASK, now, reason, template),)

    if state.balance.amount_minor <= 0:
        return Plan(PlanStatus.FINISHED, "balance settled")

    if (
        reactions.on_reply == "stop_and_hand_to_agent"
        and state.replied_at is not None
        and state.replied_at >= state.entered_segment_at
    ):
        reason = f"the debtor replied at {state.replied_at.isoformat()}: handed to an agent"
        return Plan(PlanStatus.STOPPED, reason, task("replied", "debtor-replied", reason))

    ended = _end_reason(strategy.end, state, now)
    if ended is not None:
        return Plan(PlanStatus.FINISHED, ended)

    promise = latest_promise(state.promises)
    if promise is not None:
        judged = evaluate_promise(
            promise,
            state.payments,
            time_zone=state.time_zone,
            grace_days=reactions.promise_grace_days,
            now=now,
        )
        if judged.outcome is PromiseOutcome.PENDING:
            return Plan(PlanStatus.PAUSED, f"promise {judged.reason}", resume_at=judged.deadline)
        broken = judged.outcome in (PromiseOutcome.BROKEN, PromiseOutcome.PARTIALLY_KEPT)
        if broken and reactions.on_broken_promise == "hand_to_agent":
            reason = f"promise {judged.reason}: handed to an agent"
            name = f"promise-{promise.promise_id}-{judged.outcome.value}"
            return Plan(PlanStatus.STOPPED, reason, task(name, "promise-broken", reason))

    actions: list[PlannedAction] = []
    threshold = reactions.agent_task_when_balance_above
    if threshold is not None and _above(state.balance, threshold):
        actions += task(
            "balance-above",
            "high-balance",
            f"balance {state.balance.amount_minor} {state.balance.currency} is above "
            f"{threshold.amount_minor} {threshold.currency}",
        )

    step_actions = _next_step_actions(strategy, state, now, prefix)
    if step_actions is None:
        return Plan(PlanStatus.FINISHED, "every step is done", tuple(actions))
    actions += step_actions
    return Plan(PlanStatus.ACTIVE, "following the strategy", tuple(actions))


def _end_reason(end: EndConditions, state: DebtorState, now: datetime) -> str | None:
    floor = end.balance_at_most
    if floor is not None and _same_currency_at_most(state.balance, floor):
        return f"balance is at most {floor.amount_minor} {floor.currency}"
    if end.max_days_in_segment is not None:
        limit = state.entered_segment_at + timedelta(days=end.max_days_in_segment)
        if now >= limit:
            return f"{end.max_days_in_segment} days in the segment"
    if end.max_contacts is not None:
        contacts = sum(
            record.kind is ActionKind.CONTACT and record.status in _REACHED
            for record in state.records
        )
        if contacts >= end.max_contacts:
            return f"{contacts} contacts made, limit {end.max_contacts}"
    return None


def _same_currency_at_most(balance: Money, threshold: Money) -> bool:
    return balance.currency == threshold.currency and balance.amount_minor <= threshold.amount_minor


def _above(balance: Money, threshold: Money) -> bool:
    return balance.currency == threshold.currency and balance.amount_minor > threshold.amount_minor


def _next_step_actions(
    strategy: StrategyDocument, state: DebtorState, now: datetime, prefix: str
) -> list[PlannedAction] | None:
    """The next step's action (or its fallback); [] while waiting; None when no step is left."""
    zone = ZoneInfo(state.time_zone)
    attempts: dict[tuple[int, str], list[ActionRecord]] = {}
    for record in state.records:
        if record.step_id is not None and record.kind is not ActionKind.AGENT_TASK:
            attempts.setdefault((record.round, record.step_id), []).append(record)

    shape = compiled(strategy)
    repeat_from = shape.repeat_from
    previous_at: datetime | None = None
    round_started_at: datetime | None = None
    round_number = 0
    while True:
        first_index = 0 if round_number == 0 else (repeat_from or 0)
        for index in range(first_index, len(strategy.steps)):
            step = strategy.steps[index]
            tried = attempts.get((round_number, step.step_id))
            starts_round = round_number > 0 and index == first_index
            if tried is None:
                if starts_round:
                    assert strategy.repeat is not None and round_started_at is not None
                    due = _at_local(round_started_at, strategy.repeat.every_days, step, zone)
                else:
                    due = _due(step, state, previous_at, zone)
                return [
                    _step_action(
                        strategy, shape, state, step, index, round_number, due, now, prefix
                    )
                ]
            if len(tried) > 1:
                tried.sort(key=lambda record: record.attempt)
            last = tried[-1]
            if last.status is ActionStatus.PLANNED:
                return []
            fallback = _fallback_action(step, round_number, last, now, prefix)
            if fallback is not None:
                return [fallback]
            previous_at = tried[0].happened_at or tried[0].planned_for
            if index == (repeat_from if repeat_from is not None else -1):
                round_started_at = previous_at
        repeat = strategy.repeat
        if repeat is None or (repeat.max_rounds is not None and round_number >= repeat.max_rounds):
            return None
        round_number += 1


def _due(step: Step, state: DebtorState, previous_at: datetime | None, zone: ZoneInfo) -> datetime:
    timing = step.timing
    if timing.anchor is TimingAnchor.DUE_DATE:
        return _wall_instant(
            state.oldest_due_on + timedelta(days=timing.days), timing.local_time, zone
        )
    if timing.anchor is TimingAnchor.SEGMENT_ENTRY:
        return _at_local(state.entered_segment_at, timing.days, step, zone)
    assert previous_at is not None  # validated: the first step is never timed from a previous one
    return _at_local(previous_at, timing.days, step, zone)


def _at_local(since: datetime, days: int, step: Step, zone: ZoneInfo) -> datetime:
    """`days` calendar days after `since` in the debtor's calendar, at the step's local time; never
    before `since` itself (day 0 at 10:00 for a debtor who entered at 15:00 means now)."""
    day = since.astimezone(zone).date() + timedelta(days=days)
    return max(_wall_instant(day, step.timing.local_time, zone), since.astimezone(UTC))


def _step_action(
    strategy: StrategyDocument,
    shape: CompiledStrategy,
    state: DebtorState,
    step: Step,
    index: int,
    round_number: int,
    due: datetime,
    now: datetime,
    prefix: str,
) -> PlannedAction:
    key = f"{prefix}/{step.step_id}/{round_number}/0"
    where = shape.places[index] + (f", round {round_number}" if round_number else "")
    expires_at = None
    if step.timing.anchor is TimingAnchor.DUE_DATE and step.timing.days < 0:
        # A reminder before the due date is pointless once the date has come.
        expires_at = _wall_instant(state.oldest_due_on, time(0), ZoneInfo(state.time_zone))

    def skip(reason: str) -> PlannedAction:
        reason = f"{where} skipped: {reason}"
        return PlannedAction(
            key, ActionKind.SKIP, now, reason, step.template, step.step_id, round_number
        )

    if due < state.entered_segment_at.astimezone(UTC):
        return skip(f"its time {due.isoformat()} had passed when the debtor entered the segment")
    if expires_at is not None and now >= expires_at:
        return skip(f"it was meant for before the due date {state.oldest_due_on}")
    if due <= now:
        unmet = _unmet_condition(step, strategy, state, now)
        if unmet is not None:
            return skip(unmet)
    return PlannedAction(
        key,
        ActionKind.CONTACT,
        due,
        f"{where} on {step.channel.value}" if round_number else shape.contact_reasons[index],
        step.template,
        step.step_id,
        round_number,
        0,
        step.channel,
        expires_at,
    )


def _unmet_condition(
    step: Step, strategy: StrategyDocument, state: DebtorState, now: datetime
) -> str | None:
    for condition in step.when:
        if isinstance(condition, NoOpenPromise):
            promise = latest_promise(state.promises)
            if promise is not None:
                judged = evaluate_promise(
                    promise,
                    state.payments,
                    time_zone=state.time_zone,
                    grace_days=strategy.reactions.promise_grace_days,
                    now=now,
                )
                if judged.outcome is PromiseOutcome.PENDING:
                    return "the debtor has an open promise"
        elif isinstance(condition, BalanceAbove):
            if not _above(state.balance, condition.amount):
                return f"balance is not above {condition.amount.amount_minor} {condition.amount.currency}"
        elif isinstance(condition, BalanceAtMost):
            if state.balance.currency != condition.amount.currency or _above(
                state.balance, condition.amount
            ):
                return (
                    f"balance is above {condition.amount.amount_minor} {condition.amount.currency}"
                )
        elif state.days_past_due < condition.days:
            return f"{state.days_past_due} days past due, fewer than {condition.days}"
    return None


def _fallback_action(
    step: Step, round_number: int, last: ActionRecord, now: datetime, prefix: str
) -> PlannedAction | None:
    """The next channel, when the last attempt failed, was refused, or went unanswered too long."""
    channels = step.channels()
    next_attempt = last.attempt + 1
    if step.fallback is None or next_attempt >= len(channels):
        return None
    happened = last.happened_at or last.planned_for
    watch = timedelta(hours=step.fallback.within_hours)
    if last.status in (ActionStatus.FAILED, ActionStatus.DROPPED):
        due, why = happened, f"{last.status.value} on {_channel_name(last)}"
    elif last.status is ActionStatus.SENT or (
        last.status is ActionStatus.DELIVERED and step.fallback.when == "not_read"
    ):
        due = happened + watch
        state_word = "delivered" if step.fallback.when == "not_delivered" else "read"
        why = f"not {state_word} on {_channel_name(last)} within {step.fallback.within_hours} hours"
    else:
        return None
    channel = channels[next_attempt]
    return PlannedAction(
        f"{prefix}/{step.step_id}/{round_number}/{next_attempt}",
        ActionKind.CONTACT,
        max(due, happened),
        f"{step.step_id!r} falls back to {channel.value}: {why}",
        step.template,
        step.step_id,
        round_number,
        next_attempt,
        channel,
    )


def _channel_name(record: ActionRecord) -> str:
    return record.channel.value if record.channel else "the previous channel"


@lru_cache(maxsize=4096)
def _wall_instant(day: date, wall_time: time, zone: ZoneInfo) -> datetime:
    # Cached: a portfolio's steps fall on a few days at a few local times in a few zones.
    return datetime.combine(day, wall_time, tzinfo=zone).astimezone(UTC)

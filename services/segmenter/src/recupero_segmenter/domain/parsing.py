"""Parse and validate a rule set document (already decoded from YAML or JSON).

Every problem is reported with the path to where it is, e.g.
`segments[3].when.any[1].field: unknown field 'dayz_past_due' (did you mean days_past_due?)`,
and all problems at once, so a tenant fixes a document in one round. Beyond shape and types it
rejects segments that can never match (shadowed by earlier ones) and band families that overlap or
leave a gap.
"""

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from recupero_events import CollectionStage
from recupero_segmenter.domain.rules import (
    ALWAYS,
    OPERATORS,
    All,
    AnyOf,
    Compare,
    Condition,
    FieldSpec,
    Kind,
    Not,
    Op,
    Operand,
    RuleSet,
    Segment,
    Target,
    field_spec,
)
from recupero_segmenter.domain.rules import FIELDS as CATALOGUE

MAX_SEGMENTS = 200
MAX_DEPTH = 16
NAME_PATTERN = re.compile(r"^[^\s'\"]{1,64}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
TOP_KEYS = ("description", "bands", "segments", "default")
SEGMENT_KEYS = ("name", "stage", "strategy", "band", "when")
TARGET_KEYS = ("name", "stage", "strategy")
GROUPS = ("all", "any", "not")


@dataclass(frozen=True, slots=True)
class RuleError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidRuleSet(ValueError):
    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(error) for error in errors))


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Parser:
    def __init__(self) -> None:
        self.errors: list[RuleError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(RuleError(path, message))

    def unknown_keys(self, node: Mapping[str, object], allowed: Sequence[str], path: str) -> None:
        for key in node:
            if key not in allowed:
                self.error(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key '{key}'{_suggest(str(key), allowed)}; expected one of "
                    + ", ".join(allowed),
                )

    # -- document ---------------------------------------------------------------------------

    def document(self, document: object) -> RuleSet | None:
        if not isinstance(document, Mapping):
            self.error(
                "",
                f"a rule set is a mapping with 'segments' and 'default', not {_type_name(document)}",
            )
            return None
        self.unknown_keys(document, TOP_KEYS, "")
        description = document.get("description")
        if description is not None and not isinstance(description, str):
            self.error("description", f"expected text, got {_type_name(description)}")
            description = None
        bands = self.bands(document.get("bands", {}))
        raw_segments = document.get("segments")
        segments: list[Segment | None] = []
        if not isinstance(raw_segments, list) or not raw_segments:
            self.error("segments", "expected a non-empty list of segments")
        elif len(raw_segments) > MAX_SEGMENTS:
            self.error("segments", f"at most {MAX_SEGMENTS} segments, got {len(raw_segments)}")
        else:
            segments = [
                self.segment(raw, f"segments[{index}]", bands)
                for index, raw in enumerate(raw_segments)
            ]
        default = None
        if "default" not in document:
            self.error(
                "default", "missing: declare the segment a debtor goes to when no rule matches"
            )
        else:
            default = self.target(document["default"], "default", TARGET_KEYS)
        if self.errors or default is None:
            return None
        parsed = tuple(segment for segment in segments if segment is not None)
        ruleset = RuleSet(parsed, default, bands, description)
        self.names(ruleset)
        self.errors += _check_bands(ruleset)
        self.errors += _check_reachable(ruleset)
        return None if self.errors else ruleset

    def bands(self, raw: object) -> dict[str, str]:
        if not isinstance(raw, Mapping):
            self.error(
                "bands", f"expected a mapping of family name to field, got {_type_name(raw)}"
            )
            return {}
        bands: dict[str, str] = {}
        for family, name in raw.items():
            path = f"bands.{family}"
            spec = field_spec(name) if isinstance(name, str) else None
            if spec is None:
                self.error(path, f"unknown field {name!r}{_suggest(str(name), CATALOGUE)}")
            elif spec.kind not in (Kind.INT, Kind.MONEY):
                self.error(
                    path, f"a band family needs a number or money field, '{name}' is {spec.kind}"
                )
            else:
                bands[str(family)] = spec.name
        return bands

    def names(self, ruleset: RuleSet) -> None:
        seen: dict[str, int] = {}
        for index, segment in enumerate(ruleset.segments):
            if segment.name in seen:
                self.error(
                    f"segments[{index}].name",
                    f"segment name '{segment.name}' is already used by segments[{seen[segment.name]}]",
                )
            seen.setdefault(segment.name, index)
        if ruleset.default.name in seen:
            self.error(
                "default.name",
                f"the default segment's name '{ruleset.default.name}' is already used by "
                f"segments[{seen[ruleset.default.name]}]",
            )

    def target(self, raw: object, path: str, keys: Sequence[str]) -> Target | None:
        if not isinstance(raw, Mapping):
            self.error(path, f"expected a mapping with name and stage, got {_type_name(raw)}")
            return None
        self.unknown_keys(raw, keys, path)
        before = len(self.errors)
        name = raw.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.error(
                f"{path}.name",
                "expected a name of 1 to 64 characters without spaces or quotes, got "
                + (repr(name) if isinstance(name, str) else _type_name(name)),
            )
        stages = [stage.value for stage in CollectionStage]
        stage = raw.get("stage")
        if stage not in stages:
            self.error(
                f"{path}.stage",
                f"unknown stage {stage!r}{_suggest(str(stage), stages)}; expected one of "
                + ", ".join(stages),
            )
        strategy = raw.get("strategy")
        if strategy is not None and (not isinstance(strategy, str) or not strategy):
            self.error(f"{path}.strategy", f"expected a strategy name, got {_type_name(strategy)}")
        if len(self.errors) > before:
            return None
        assert isinstance(name, str) and isinstance(stage, str)
        return Target(name, CollectionStage(stage), strategy if isinstance(strategy, str) else None)

    def segment(self, raw: object, path: str, bands: Mapping[str, str]) -> Segment | None:
        target = self.target(raw, path, SEGMENT_KEYS)
        if not isinstance(raw, Mapping):
            return None
        when = ALWAYS if raw.get("when") is None else self.condition(raw["when"], f"{path}.when", 0)
        band = raw.get("band")
        if band is not None and band not in bands:
            self.error(
                f"{path}.band",
                f"band family {band!r} is not declared under 'bands'" + _suggest(str(band), bands),
            )
        if target is None or when is None:
            return None
        return Segment(target, when, band if isinstance(band, str) else None)

    # -- conditions -------------------------------------------------------------------------

    def condition(self, raw: object, path: str, depth: int) -> Condition | None:
        if depth > MAX_DEPTH:
            self.error(path, f"conditions nest deeper than {MAX_DEPTH} levels")
            return None
        if not isinstance(raw, Mapping):
            self.error(
                path,
                "expected a condition: {field: ..., <operator>: ...} or all/any/not, got "
                + _type_name(raw),
            )
            return None
        groups = [key for key in GROUPS if key in raw]
        if groups:
            if len(raw) != 1:
                self.error(
                    path, f"'{groups[0]}' must be alone in its mapping; nest the rest inside it"
                )
                return None
            key = groups[0]
            inner = raw[key]
            if key == "not":
                item = self.condition(inner, f"{path}.not", depth + 1)
                return None if item is None else Not(item)
            if not isinstance(inner, list):
                self.error(
                    f"{path}.{key}", f"expected a list of conditions, got {_type_name(inner)}"
                )
                return None
            if key == "any" and not inner:
                self.error(
                    f"{path}.any", "an empty 'any' never matches; give at least one condition"
                )
                return None
            items = [
                self.condition(item, f"{path}.{key}[{index}]", depth + 1)
                for index, item in enumerate(inner)
            ]
            if any(item is None for item in items):
                return None
            parsed = tuple(item for item in items if item is not None)
            return All(parsed) if key == "all" else AnyOf(parsed)
        if "field" not in raw:
            keys = ", ".join(str(key) for key in raw) or "nothing"
            self.error(
                path,
                f"a condition needs 'field' and an operator, or one of all/any/not; got {keys}"
                + _suggest(next(iter(map(str, raw)), ""), GROUPS),
            )
            return None
        return self.leaf(raw, path)

    def leaf(self, raw: Mapping[str, object], path: str) -> Compare | None:
        name = raw["field"]
        if not isinstance(name, str):
            self.error(f"{path}.field", f"expected a field name, got {_type_name(name)}")
            return None
        spec = field_spec(name)
        if spec is None:
            self.error(
                f"{path}.field",
                f"unknown field '{name}'{_suggest(name, CATALOGUE)}; custom attributes are "
                "written custom.<name>",
            )
            return None
        operators = [key for key in raw if key != "field"]
        if len(operators) != 1:
            self.error(
                path,
                f"expected exactly one operator next to 'field', got {len(operators)}"
                + (f" ({', '.join(map(str, operators))})" if operators else "")
                + "; combine several with all/any",
            )
            return None
        key = str(operators[0])
        allowed = sorted(OPERATORS[spec.kind])
        if key not in Op.__members__.values():
            self.error(
                f"{path}.{key}",
                f"unknown operator '{key}'{_suggest(key, [op.value for op in Op])}",
            )
            return None
        op = Op(key)
        if op not in OPERATORS[spec.kind]:
            self.error(
                f"{path}.{key}",
                f"operator '{key}' does not apply to {spec.kind} field '{name}'; use one of "
                + ", ".join(allowed),
            )
            return None
        value = raw[key]
        if op is Op.EXISTS:
            if not isinstance(value, bool):
                self.error(f"{path}.exists", f"expected true or false, got {_type_name(value)}")
                return None
            return Compare(name, op, value)
        if spec.kind is Kind.MONEY and isinstance(value, Mapping):
            by_currency = []
            if not value:
                self.error(f"{path}.{key}", "expected at least one currency")
            for currency, amount in value.items():
                if not isinstance(currency, str) or not CURRENCY.match(currency):
                    self.error(
                        f"{path}.{key}.{currency}",
                        f"expected an ISO-4217 currency code such as MXN, got {currency!r}",
                    )
                    continue
                operand = self.operand(spec, op, amount, f"{path}.{key}.{currency}")
                if operand is not None:
                    by_currency.append((currency, operand))
            if len(by_currency) != len(value):
                return None
            return Compare(name, op, None, tuple(sorted(by_currency)))
        operand = self.operand(spec, op, value, f"{path}.{key}")
        return None if operand is None else Compare(name, op, operand)

    def operand(self, spec: FieldSpec, op: Op, value: object, path: str) -> Operand | None:
        numeric = spec.kind in (Kind.INT, Kind.MONEY)
        what = "a whole number of minor units" if spec.kind is Kind.MONEY else "a whole number"
        if op is Op.BETWEEN:
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not all(_is_int(item) for item in value)
            ):
                self.error(
                    path,
                    f"expected [low, high], two whole numbers, for '{spec.name}', got {value!r}",
                )
                return None
            low, high = value
            if low > high:
                self.error(path, f"the low bound {low} is above the high bound {high}")
                return None
            return (low, high)
        if op in (Op.IN, Op.NOT_IN):
            if not isinstance(value, list) or not value:
                self.error(path, f"expected a non-empty list, got {_type_name(value)}")
                return None
            items = [
                self.scalar(spec, item, f"{path}[{index}]") for index, item in enumerate(value)
            ]
            if any(item is None for item in items):
                return None
            return tuple(item for item in items if item is not None)
        if numeric:
            if not _is_int(value):
                self.error(
                    path, f"'{spec.name}' is {spec.kind}: expected {what}, got {_type_name(value)}"
                )
                return None
            assert isinstance(value, int)
            return value
        return self.scalar(spec, value, path)

    def scalar(self, spec: FieldSpec, value: object, path: str) -> int | str | None:
        if spec.kind in (Kind.INT, Kind.MONEY):
            if not _is_int(value):
                self.error(
                    path,
                    f"'{spec.name}' is {spec.kind}: expected a whole number, got {_type_name(value)}",
                )
                return None
            assert isinstance(value, int)
            return value
        if _is_int(value):
            value = str(value)  # YAML reads `zone: 12` as a number; the field is text
        if not isinstance(value, str):
            self.error(path, f"'{spec.name}' is text: expected text, got {_type_name(value)}")
            return None
        if spec.kind is Kind.ENUM and value not in spec.values:
            self.error(
                path,
                f"'{value}' is not a value of '{spec.name}'{_suggest(value, spec.values)}; "
                "expected one of " + ", ".join(spec.values),
            )
            return None
        return value


def parse_ruleset(document: object) -> RuleSet:
    """The rule set, or `InvalidRuleSet` listing every problem with its path."""
    parser = _Parser()
    ruleset = parser.document(document)
    if parser.errors or ruleset is None:
        raise InvalidRuleSet(parser.errors or [RuleError("", "invalid rule set")])
    return ruleset


# -- semantic checks: bands and reachability ----------------------------------------------------

Interval = tuple[int | None, int | None]  # inclusive bounds; None is unbounded
Ranges = dict[str | None, Interval]  # per currency; None = any currency
RANGE_OPS = (Op.EQ, Op.LT, Op.LTE, Op.GT, Op.GTE, Op.BETWEEN)


def _interval(op: Op, operand: Operand | None) -> Interval:
    match op:
        case Op.EQ:
            assert isinstance(operand, int)
            return (operand, operand)
        case Op.LT:
            assert isinstance(operand, int)
            return (None, operand - 1)
        case Op.LTE:
            assert isinstance(operand, int)
            return (None, operand)
        case Op.GT:
            assert isinstance(operand, int)
            return (operand + 1, None)
        case Op.GTE:
            assert isinstance(operand, int)
            return (operand, None)
        case Op.BETWEEN:
            assert isinstance(operand, tuple)
            low, high = operand
            assert isinstance(low, int) and isinstance(high, int)
            return (low, high)
    raise AssertionError(op)


def _intersect(a: Interval, b: Interval) -> Interval:
    low = a[0] if b[0] is None else b[0] if a[0] is None else max(a[0], b[0])
    high = a[1] if b[1] is None else b[1] if a[1] is None else min(a[1], b[1])
    return (low, high)


def _empty(interval: Interval) -> bool:
    return interval[0] is not None and interval[1] is not None and interval[0] > interval[1]


def _contains(outer: Interval, inner: Interval) -> bool:
    low_ok = outer[0] is None or (inner[0] is not None and inner[0] >= outer[0])
    high_ok = outer[1] is None or (inner[1] is not None and inner[1] <= outer[1])
    return low_ok and high_ok


def _leaf_ranges(leaf: Compare) -> Ranges:
    if leaf.by_currency:
        return {currency: _interval(leaf.op, value) for currency, value in leaf.by_currency}
    return {None: _interval(leaf.op, leaf.operand)}


def _conjuncts(condition: Condition) -> list[Compare] | None:
    """The leaves of a pure conjunction (nested `all`s), or None if it has any/not."""
    if isinstance(condition, Compare):
        return [condition]
    if isinstance(condition, All):
        leaves: list[Compare] = []
        for item in condition.items:
            inner = _conjuncts(item)
            if inner is None:
                return None
            leaves += inner
        return leaves
    return None


def _range_on(leaves: Sequence[Compare], name: str) -> Ranges | None:
    """Where the conjunction lets `name` be, per currency; None if it does not bound it."""
    spec = field_spec(name)
    if spec is None or spec.kind not in (Kind.INT, Kind.MONEY):
        return None
    ranged = [leaf for leaf in leaves if leaf.field == name and leaf.op in RANGE_OPS]
    if not ranged:
        return None
    anywhere: Interval = (None, None)
    per_currency: list[Ranges] = []
    for leaf in ranged:
        if leaf.by_currency:
            per_currency.append(_leaf_ranges(leaf))
        else:
            anywhere = _intersect(anywhere, _leaf_ranges(leaf)[None])
    if not per_currency:
        return {None: anywhere}
    currencies = set.intersection(*(set(ranges) for ranges in per_currency))
    result: Ranges = {}
    for currency in currencies:
        interval = anywhere
        for ranges in per_currency:
            interval = _intersect(interval, ranges[currency])
        result[currency] = interval
    return result


def _ranges_within(inner: Ranges, outer: Ranges) -> bool:
    for currency, interval in inner.items():
        if _empty(interval):
            continue
        bound = outer.get(currency) if currency is not None else outer.get(None)
        if bound is None and currency is not None:
            bound = outer.get(None)
        if bound is None or not _contains(bound, interval):
            return False
    return True


def _implies(leaves: Sequence[Compare], leaf: Compare) -> bool:
    """Whether every debtor matching the conjunction `leaves` satisfies `leaf`."""
    if leaf in leaves:
        return True
    same = [other for other in leaves if other.field == leaf.field]
    if leaf.op is Op.EXISTS:
        return leaf.operand is True and any(
            other.op is not Op.EXISTS or other.operand is True for other in same
        )
    spec = field_spec(leaf.field)
    if spec is not None and spec.kind in (Kind.INT, Kind.MONEY) and leaf.op in RANGE_OPS:
        ranges = _range_on(leaves, leaf.field)
        return ranges is not None and _ranges_within(ranges, _leaf_ranges(leaf))
    if leaf.op in (Op.EQ, Op.IN):
        allowed = {leaf.operand} if leaf.op is Op.EQ else set(_as_tuple(leaf.operand))
        for other in same:
            values = (
                {other.operand}
                if other.op is Op.EQ
                else set(_as_tuple(other.operand))
                if other.op is Op.IN
                else None
            )
            if values is not None and values <= allowed:
                return True
    return False


def _as_tuple(operand: Operand | None) -> tuple[int | str, ...]:
    assert isinstance(operand, tuple)
    return operand


def _check_reachable(ruleset: RuleSet) -> list[RuleError]:
    errors: list[RuleError] = []
    for index, segment in enumerate(ruleset.segments):
        path = f"segments[{index}]"
        leaves = _conjuncts(segment.when)
        if leaves is not None:
            for name in {leaf.field for leaf in leaves}:
                ranges = _range_on(leaves, name)
                if ranges is not None and all(_empty(iv) for iv in ranges.values()):
                    errors.append(
                        RuleError(
                            f"{path}.when",
                            f"segment '{segment.name}' can never match: its conditions on "
                            f"'{name}' contradict each other",
                        )
                    )
        for earlier_index, earlier in enumerate(ruleset.segments[:index]):
            earlier_leaves = _conjuncts(earlier.when)
            shadowed = earlier.when == segment.when or (
                earlier_leaves is not None
                and leaves is not None
                and all(_implies(leaves, leaf) for leaf in earlier_leaves)
            )
            if shadowed:
                errors.append(
                    RuleError(
                        path,
                        f"segment '{segment.name}' can never match: every debtor it matches is "
                        f"matched first by segments[{earlier_index}] '{earlier.name}'",
                    )
                )
                break
        else:
            covered = _covered_by_union(ruleset, index, leaves)
            if covered:
                errors.append(RuleError(path, covered))
    return errors


def _covered_by_union(ruleset: RuleSet, index: int, leaves: list[Compare] | None) -> str | None:
    """A segment bounded on a number field whose range earlier single-field segments cover
    together (e.g. a `days_past_due >= 400` after buckets that already reach 'beyond 180')."""
    if leaves is None:
        return None
    segment = ruleset.segments[index]
    for name in sorted({leaf.field for leaf in leaves}):
        spec = field_spec(name)
        if spec is None or spec.kind is not Kind.INT:
            continue
        ranges = _range_on(leaves, name)
        if ranges is None or None not in ranges:
            continue
        target = ranges[None]
        pieces: list[tuple[Interval, int]] = []
        for earlier_index, earlier in enumerate(ruleset.segments[:index]):
            earlier_leaves = _conjuncts(earlier.when)
            if not earlier_leaves or any(
                leaf.field != name or leaf.op not in RANGE_OPS for leaf in earlier_leaves
            ):
                continue
            earlier_ranges = _range_on(earlier_leaves, name)
            if earlier_ranges is not None and None in earlier_ranges:
                piece = earlier_ranges[None]
                if not _empty(_intersect(piece, target)):
                    pieces.append((piece, earlier_index))
        if pieces and _union_contains([piece for piece, _ in pieces], target):
            used = ", ".join(
                f"segments[{i}] '{ruleset.segments[i].name}'"
                for _, i in sorted(pieces, key=lambda p: p[1])
            )
            return (
                f"segment '{segment.name}' can never match: the '{name}' values it accepts are "
                f"all taken first by {used}"
            )
    return None


def _sort_key(interval: Interval) -> tuple[bool, int]:
    return (interval[0] is not None, interval[0] or 0)


def _union_contains(pieces: Sequence[Interval], target: Interval) -> bool:
    if _empty(target):
        return True
    ordered = sorted((p for p in pieces if not _empty(p)), key=_sort_key)
    # Walk from the target's low end, extending the covered reach with each piece.
    reach_low = target[0]
    for low, high in ordered:
        starts_in_time = low is None or (reach_low is not None and low <= reach_low)
        if not starts_in_time:
            return False
        if high is None:
            return True
        if reach_low is None or high + 1 > reach_low:
            reach_low = high + 1
        if target[1] is not None and reach_low > target[1]:
            return True
    return False


def _check_bands(ruleset: RuleSet) -> list[RuleError]:
    errors: list[RuleError] = []
    for family, name in ruleset.bands.items():
        members: dict[str | None, list[tuple[Interval, int]]] = {}
        for index, segment in enumerate(ruleset.segments):
            if segment.band != family:
                continue
            leaves = _conjuncts(segment.when)
            ranges = None if leaves is None else _range_on(leaves, name)
            if ranges is None:
                errors.append(
                    RuleError(
                        f"segments[{index}].when",
                        f"segment '{segment.name}' is in band family '{family}' but its "
                        f"condition does not bound '{name}' (use between/lt/lte/gt/gte inside "
                        "'all')",
                    )
                )
                continue
            for currency, interval in ranges.items():
                members.setdefault(currency, []).append((interval, index))
        for currency, bands in members.items():
            where = f" in {currency}" if currency else ""
            distinct = sorted(
                {interval: i for interval, i in reversed(bands)}.items(),
                key=lambda item: _sort_key(item[0]),
            )
            for (previous, i), (current, j) in pairwise(distinct):
                first, second = sorted((i, j))
                names = (
                    f"segments[{first}] '{ruleset.segments[first].name}' and "
                    f"segments[{second}] '{ruleset.segments[second].name}'"
                )
                if previous[1] is None or current[0] is None or current[0] <= previous[1]:
                    low, high = _intersect(previous, current)
                    errors.append(
                        RuleError(
                            f"segments[{second}].when",
                            f"band family '{family}' overlaps{where}: {names} both cover "
                            f"'{name}' {_span(low, high)}",
                        )
                    )
                elif current[0] > previous[1] + 1:
                    errors.append(
                        RuleError(
                            f"segments[{second}].when",
                            f"band family '{family}' leaves a gap{where}: no segment covers "
                            f"'{name}' {_span(previous[1] + 1, current[0] - 1)}, between {names}",
                        )
                    )
    return errors


def _span(low: int | None, high: int | None) -> str:
    if low is None:
        return f"<= {high}"
    if high is None:
        return f">= {low}"
    return f"{low}..{high}" if low != high else f"= {low}"

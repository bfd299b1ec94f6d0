"""The alert file: metric filter + alarm + actions per alert, validated with errors naming alert and field.

Rules beyond the YAML shape come from the AWS limits (README.md, "Pattern forms and AWS limits"): a correlation
ID is never a dimension, dimensions exclude a default value, at most 3 dimensions, 2 subscription filters and
5 regex patterns per log group, alarm periods of 10/20/30 s or multiples of 60 s.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from corrtrace.alerts.patterns import FilterPattern, PatternError, compile_pattern, parse
from corrtrace.alerts.patterns import ast as pattern_ast
from corrtrace.alerts.patterns.compiler import MISSING, select

from corrtrace.config import read_yaml, shown
from corrtrace.errors import InvalidInput

STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")


class AlarmState(StrEnum):
    """An alarm's state, spelled as CloudWatch spells it (in alarm events and the saved state file)."""

    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Comparison(StrEnum):
    """An alarm's ``ComparisonOperator``: the four CloudWatch takes for a static threshold."""

    GREATER_OR_EQUAL = "GreaterThanOrEqualToThreshold"
    GREATER = "GreaterThanThreshold"
    LESS = "LessThanThreshold"
    LESS_OR_EQUAL = "LessThanOrEqualToThreshold"

    def breaches(self, value: float, threshold: float) -> bool:
        """Whether a datapoint of ``value`` breaches ``threshold`` under this operator."""
        match self:
            case Comparison.GREATER_OR_EQUAL:
                return value >= threshold
            case Comparison.GREATER:
                return value > threshold
            case Comparison.LESS:
                return value < threshold
            case Comparison.LESS_OR_EQUAL:
                return value <= threshold
        raise AssertionError(self)  # unreachable: the match covers every member

    @property
    def words(self) -> str:
        """The operator as CloudWatch's reason text says it: ``greater than or equal to``."""
        return re.sub(r"(?<!^)(?=[A-Z])", " ", self.removesuffix("Threshold")).lower()


TREAT_MISSING = ("missing", "notBreaching", "breaching", "ignore")
UNITS = frozenset(
    [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ]
)
ACTION_TYPES = ("txmanager", "sns", "lambda")
_LOG_GROUP = re.compile(r"[\.\-_/#A-Za-z0-9]+")
_METRIC_NAME = re.compile(r"[^:*$]*")
_FIELD_REF = re.compile(r"\$(\w+)")
_PERCENTILE = re.compile(r"p(\d{1,2}(\.\d+)?)")
MAX_SUBSCRIPTIONS_PER_GROUP = 2
MAX_REGEX_FILTERS_PER_GROUP = 5


class AlertDefinitionError(InvalidInput):
    """An alert file is wrong; the message names the alert and the field."""


@dataclass(frozen=True)
class MetricSpec:
    namespace: str
    name: str
    value: str = "1"
    default: float | None = None
    dimensions: Mapping[str, str] = field(default_factory=dict)
    unit: str | None = None


@dataclass(frozen=True)
class AlarmSpec:
    statistic: str = "Sum"
    period: int = 60
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    threshold: float = 1.0
    comparison: Comparison = Comparison.GREATER_OR_EQUAL
    treat_missing_data: str = "missing"
    name: str = ""
    description: str = ""
    dimensions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionSpec:
    type: str
    target: str = ""


@dataclass(frozen=True)
class JamSpec:
    threshold: int = 3
    window: float = 300.0


ValueGetter = Callable[[str, Any, "dict[str, str] | None"], "float | None"]
DimensionGetter = Callable[[str, Any, "dict[str, str] | None"], "dict[str, str] | None"]


@dataclass
class Alert:
    """One validated alert with its compiled pattern and metric-value / dimension extractors."""

    name: str
    pattern: FilterPattern
    log_groups: tuple[str, ...] = ()
    metric: MetricSpec | None = None
    alarm: AlarmSpec | None = None
    actions: tuple[ActionSpec, ...] = ()
    subscribe: bool = False
    jam: JamSpec | None = None
    description: str = ""
    metric_value: ValueGetter = field(default=lambda m, p, e: 1.0, repr=False)
    dimensions: DimensionGetter = field(default=lambda m, p, e: {}, repr=False)

    @property
    def alarm_name(self) -> str:
        return (self.alarm.name if self.alarm and self.alarm.name else "") or self.name

    @property
    def filter_name(self) -> str:
        return f"corrtrace-{self.name}"

    @property
    def subscription_name(self) -> str:
        return f"corrtrace-{self.name}-handler"

    @property
    def has_regex(self) -> bool:
        return _contains_regex(self.pattern.tree)


def _contains_regex(tree: pattern_ast.Pattern) -> bool:
    """Whether a pattern counts against the per-log-group regex quota."""
    if isinstance(tree, pattern_ast.Regex):
        return True
    if isinstance(tree, pattern_ast.Json):
        stack: list[Any] = [tree.expr]
    elif isinstance(tree, pattern_ast.Delimited):
        stack = [f.cond for f in tree.fields if f.cond is not None]
    else:
        return False
    while stack:
        node = stack.pop()
        if isinstance(node, pattern_ast.BoolOp | pattern_ast.CondOp):
            stack.extend(node.items)
        elif isinstance(node, pattern_ast.Compare | pattern_ast.FieldCond) and node.value.kind == "regex":
            return True
    return False


class _Ctx:
    def __init__(self, alert: str) -> None:
        self.alert = alert

    def fail(self, path: str, message: str) -> AlertDefinitionError:
        return AlertDefinitionError(f"alert {self.alert!r}: field {path!r}: {message}")

    def mapping(self, value: Any, path: str, known: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise self.fail(f"{path}.{unknown[0]}" if path else unknown[0], f"unknown key (known: {', '.join(known)})")
        return value

    def string(self, value: Any, path: str, *, max_len: int = 255, regex: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected a non-empty string, got {shown(value)}")
        if len(value) > max_len:
            raise self.fail(path, f"longer than {max_len} characters")
        if regex is not None and not regex.fullmatch(value):
            raise self.fail(path, f"{value!r} does not match {regex.pattern}")
        return value

    def number(self, value: Any, path: str) -> float:
        number = None
        if isinstance(value, str):  # YAML reads 1e9 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        if number is None or not math.isfinite(number):  # NaN never breaches: an alarm that can never fire
            raise self.fail(path, f"expected a finite number, got {shown(value)}")
        return number

    def integer(self, value: Any, path: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {shown(value)}")
        return value


def _is_correlation(text: str) -> bool:
    return "correlation" in text.lower().replace("-", "_")


def _value_getter(ctx: _Ctx, spec: str, pattern: FilterPattern, path: str) -> ValueGetter:
    """Metric value: a literal number, ``$.path`` (JSON patterns) or ``$name`` / ``$N`` (space-delimited)."""
    if len(spec) > 100:
        raise ctx.fail(path, "longer than 100 characters")
    try:
        constant = float(spec)
    except ValueError:
        pass
    else:
        if not math.isfinite(constant):
            raise ctx.fail(path, f"expected a finite number, got {shown(spec)}")
        return lambda m, p, e: constant
    if spec.startswith("$."):
        if not pattern.is_json:
            raise ctx.fail(path, f"{spec!r} needs a JSON filter pattern ({{ ... }})")
        selector = _selector(ctx, spec, path)

        def from_json(message: str, parsed: Any, extracted: dict[str, str] | None) -> float | None:
            return _as_number(select(parsed, selector) if parsed is not MISSING else MISSING)

        return from_json
    match = _FIELD_REF.fullmatch(spec)
    if match:
        _check_field_ref(ctx, spec, pattern, path)
        return lambda m, p, e: _as_number(e.get(spec, MISSING) if e else MISSING)
    raise ctx.fail(path, f"{spec!r} is not a number, a $.json.path or a $field reference")


def _check_field_ref(ctx: _Ctx, spec: str, pattern: FilterPattern, path: str) -> None:
    if pattern.kind != "delimited":
        raise ctx.fail(path, f"{spec!r} needs a space-delimited filter pattern ([ ... ])")
    name = spec[1:]
    if not name.isdigit() and spec not in pattern.field_keys():
        raise ctx.fail(path, f"{spec!r} is not a field of the pattern (fields: {', '.join(pattern.field_keys())})")


def _selector(ctx: _Ctx, spec: str, path: str) -> pattern_ast.Selector:
    try:
        tree = parse("{ " + spec + " NOT EXISTS }")
    except PatternError as exc:
        raise ctx.fail(path, f"invalid JSON selector {spec!r}: {exc.reason}") from None
    assert isinstance(tree, pattern_ast.Json) and isinstance(tree.expr, pattern_ast.IsTest)
    if tree.expr.selector.wildcards:
        raise ctx.fail(path, "a metric value or dimension selector cannot contain a wildcard")
    return tree.expr.selector


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is MISSING or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _json_dimension(selector: pattern_ast.Selector) -> Callable[[Any, dict[str, str] | None], Any]:
    return lambda parsed, extracted: select(parsed, selector) if parsed is not MISSING else MISSING


def _field_dimension(key: str) -> Callable[[Any, dict[str, str] | None], Any]:
    return lambda parsed, extracted: (extracted or {}).get(key, MISSING)


def _dimension_getter(ctx: _Ctx, dims: Mapping[str, str], pattern: FilterPattern) -> DimensionGetter:
    getters: list[tuple[str, Callable[[Any, dict[str, str] | None], Any]]] = []
    for key, spec in dims.items():
        path = f"metric.dimensions.{key}"
        if spec.startswith("$."):
            if not pattern.is_json:
                raise ctx.fail(path, f"{spec!r} needs a JSON filter pattern")
            getters.append((key, _json_dimension(_selector(ctx, spec, path))))
        elif _FIELD_REF.fullmatch(spec):
            _check_field_ref(ctx, spec, pattern, path)
            getters.append((key, _field_dimension(spec)))
        else:
            raise ctx.fail(path, f"{spec!r} must be a $.json.path or a $field reference")

    def dimensions(message: str, parsed: Any, extracted: dict[str, str] | None) -> dict[str, str] | None:
        out: dict[str, str] = {}
        for key, get in getters:
            value = get(parsed, extracted)
            if value is MISSING or value is None or isinstance(value, dict | list):
                return None
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    return dimensions


def _metric(ctx: _Ctx, raw: Any, pattern: FilterPattern) -> tuple[MetricSpec, ValueGetter, DimensionGetter]:
    m = ctx.mapping(raw, "metric", ("namespace", "name", "value", "default", "dimensions", "unit"))
    namespace = ctx.string(m.get("namespace"), "metric.namespace", regex=_METRIC_NAME)
    name = ctx.string(m.get("name"), "metric.name", regex=_METRIC_NAME)
    value = str(m.get("value", "1"))
    default = None if m.get("default") is None else ctx.number(m.get("default"), "metric.default")
    dims_raw = m.get("dimensions") or {}
    if not isinstance(dims_raw, Mapping):
        raise ctx.fail("metric.dimensions", "expected a mapping of dimension name to $.path or $field")
    dims = {str(k): str(v) for k, v in dims_raw.items()}
    if len(dims) > 3:
        raise ctx.fail("metric.dimensions", "at most 3 dimensions are allowed")
    for key, spec in dims.items():
        if _is_correlation(key) or _is_correlation(spec):
            raise ctx.fail(
                f"metric.dimensions.{key}",
                "a correlation ID must never be a metric dimension (every request is a new value; CloudWatch "
                "disables a filter that produces 1000 distinct dimension values)",
            )
        if len(key) > 255 or len(spec) > 255:
            raise ctx.fail(f"metric.dimensions.{key}", "keys and values are at most 255 characters")
    if dims and default is not None:
        raise ctx.fail("metric.default", "a default value is not allowed together with dimensions (AWS rejects it)")
    if dims and pattern.kind not in ("json", "delimited"):
        raise ctx.fail("metric.dimensions", "dimensions need a JSON or space-delimited filter pattern")
    unit = m.get("unit")
    if unit is not None and unit not in UNITS:
        raise ctx.fail("metric.unit", f"{unit!r} is not a CloudWatch StandardUnit")
    metric = MetricSpec(namespace, name, value, default, dims, unit)
    return metric, _value_getter(ctx, value, pattern, "metric.value"), _dimension_getter(ctx, dims, pattern)


def _alarm(ctx: _Ctx, raw: Any, metric: MetricSpec) -> AlarmSpec:
    known = [
        "statistic",
        "period",
        "evaluation_periods",
        "datapoints_to_alarm",
        "threshold",
        "comparison",
        "treat_missing_data",
        "name",
        "description",
        "dimensions",
    ]
    a = ctx.mapping(raw, "alarm", known)
    statistic = str(a.get("statistic", "Sum"))
    if statistic not in STATISTICS and not _PERCENTILE.fullmatch(statistic):
        raise ctx.fail("alarm.statistic", f"expected one of {', '.join(STATISTICS)} or a percentile like p90")
    period = ctx.integer(a.get("period", 60), "alarm.period", 10)
    if period not in (10, 20, 30) and period % 60:
        raise ctx.fail("alarm.period", f"{period} is not 10, 20, 30 or a multiple of 60")
    evaluation = ctx.integer(a.get("evaluation_periods", 1), "alarm.evaluation_periods")
    datapoints = ctx.integer(a.get("datapoints_to_alarm", evaluation), "alarm.datapoints_to_alarm")
    if datapoints > evaluation:
        raise ctx.fail("alarm.datapoints_to_alarm", f"{datapoints} is more than evaluation_periods ({evaluation})")
    if evaluation * period > 86400:
        raise ctx.fail("alarm.evaluation_periods", "evaluation_periods x period cannot exceed one day")
    threshold = ctx.number(a.get("threshold", 1), "alarm.threshold")
    comparison = str(a.get("comparison", Comparison.GREATER_OR_EQUAL))
    if comparison not in set(Comparison):
        raise ctx.fail("alarm.comparison", f"expected one of {', '.join(Comparison)}")
    treat = str(a.get("treat_missing_data", "missing"))
    if treat not in TREAT_MISSING:
        raise ctx.fail("alarm.treat_missing_data", f"expected one of {', '.join(TREAT_MISSING)}")
    dims = {str(k): str(v) for k, v in (a.get("dimensions") or {}).items()}
    if set(dims) != set(metric.dimensions):
        raise ctx.fail(
            "alarm.dimensions",
            f"must name exactly the metric's dimensions ({', '.join(sorted(metric.dimensions)) or 'none'})",
        )
    name = str(a.get("name") or "")
    if name and not name.isascii():
        raise ctx.fail("alarm.name", "alarm names must contain only ASCII characters")
    return AlarmSpec(
        statistic,
        period,
        evaluation,
        datapoints,
        threshold,
        Comparison(comparison),
        treat,
        name,
        str(a.get("description", "")),
        dims,
    )


def _actions(ctx: _Ctx, raw: Any) -> tuple[ActionSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.fail("actions", "expected a list")
    out: list[ActionSpec] = []
    for i, item in enumerate(raw):
        path = f"actions[{i}]"
        if isinstance(item, str):
            item = {"type": item}
        a = ctx.mapping(item, path, ("type", "topic_arn", "function_arn", "url"))
        kind = a.get("type")
        if kind not in ACTION_TYPES:
            raise ctx.fail(f"{path}.type", f"expected one of {', '.join(ACTION_TYPES)}, got {shown(kind)}")
        key = {"sns": "topic_arn", "lambda": "function_arn", "txmanager": "url"}[kind]
        target = a.get(key, "")
        if kind != "txmanager" and not (isinstance(target, str) and target.startswith("arn:")):
            raise ctx.fail(f"{path}.{key}", f"a {kind} action needs an ARN in {key}")
        out.append(ActionSpec(kind, str(target or "")))
    if sum(1 for a in out if a.type != "txmanager") > 5:
        raise ctx.fail("actions", "at most 5 alarm action ARNs")
    return tuple(out)


def parse_alert(raw: Any, index: int = 0) -> Alert:
    """Validate one alert mapping."""
    name = raw.get("name") if isinstance(raw, Mapping) else None
    ctx = _Ctx(str(name) if name else f"#{index}")
    known = ("name", "description", "log_groups", "pattern", "metric", "alarm", "actions", "subscribe", "jam", "mode")
    a = ctx.mapping(raw, "", known)
    ctx.string(name, "name", max_len=500, regex=re.compile(r"[^:*]+"))
    groups_raw = a.get("log_groups") or []
    if isinstance(groups_raw, str):
        groups_raw = [groups_raw]
    groups = tuple(ctx.string(g, f"log_groups[{i}]", max_len=512, regex=_LOG_GROUP) for i, g in enumerate(groups_raw))
    text = a.get("pattern")
    if not isinstance(text, str):
        raise ctx.fail("pattern", 'expected a filter pattern string (use "" to match every event)')
    mode = a.get("mode", "exact")
    if mode not in ("exact", "rest"):
        raise ctx.fail("mode", "expected exact or rest (space-delimited field count)")
    try:
        pattern = compile_pattern(text, delimited_mode=mode)
    except PatternError as exc:
        raise ctx.fail("pattern", str(exc)) from None
    alert = Alert(name=str(name), pattern=pattern, log_groups=groups, description=str(a.get("description", "")))
    if a.get("metric") is not None:
        alert.metric, alert.metric_value, alert.dimensions = _metric(ctx, a["metric"], pattern)
    if a.get("alarm") is not None:
        if alert.metric is None:
            raise ctx.fail("alarm", "an alarm needs a metric")
        alert.alarm = _alarm(ctx, a["alarm"], alert.metric)
    alert.actions = _actions(ctx, a.get("actions"))
    subscribe = a.get("subscribe", False)
    if not isinstance(subscribe, bool):
        raise ctx.fail("subscribe", "expected true or false")
    alert.subscribe = subscribe
    if a.get("jam") is not None:
        j = ctx.mapping(a["jam"], "jam", ("threshold", "window"))
        threshold = ctx.integer(j.get("threshold", 3), "jam.threshold", 2)
        window = ctx.number(j.get("window", 300), "jam.window")
        if window <= 0:
            raise ctx.fail("jam.window", "must be positive")
        alert.jam = JamSpec(threshold, window)
    if alert.metric is None and alert.jam is None:
        raise ctx.fail("metric", "an alert needs a metric (metric filter) or a jam rule")
    return alert


def parse_alerts(data: Any, source: str = "<alerts>") -> list[Alert]:
    """Validate a whole alert document (``{"alerts": [...]}`` or a bare list)."""
    items = data.get("alerts") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise AlertDefinitionError(f"{source}: expected a list of alerts under 'alerts'")
    alerts = [parse_alert(item, i) for i, item in enumerate(items)]
    names = Counter(a.name for a in alerts)
    dup = next((n for n, c in names.items() if c > 1), None)
    if dup:
        raise AlertDefinitionError(f"alert {dup!r}: field 'name': defined twice in {source}")
    _check_group_quotas(alerts)
    return alerts


def _check_group_quotas(alerts: Sequence[Alert]) -> None:
    subs: Counter[str] = Counter()
    regexes: Counter[str] = Counter()
    for alert in alerts:
        for group in alert.log_groups:
            if alert.subscribe:
                subs[group] += 1
                if subs[group] > MAX_SUBSCRIPTIONS_PER_GROUP:
                    raise AlertDefinitionError(
                        f"alert {alert.name!r}: field 'subscribe': log group {group} would have more than "
                        f"{MAX_SUBSCRIPTIONS_PER_GROUP} subscription filters"
                    )
            if alert.has_regex:
                regexes[group] += (1 if alert.metric else 0) + (1 if alert.subscribe else 0)
                if regexes[group] > MAX_REGEX_FILTERS_PER_GROUP:
                    raise AlertDefinitionError(
                        f"alert {alert.name!r}: field 'pattern': log group {group} would have more than "
                        f"{MAX_REGEX_FILTERS_PER_GROUP} filter patterns containing a regex"
                    )


def load_alerts(path: str | Path) -> list[Alert]:
    """Read and validate an alert YAML file."""
    file = Path(path)
    return parse_alerts(read_yaml(file, "alert file", AlertDefinitionError), str(file))


def builtin_alerts(log_groups: Sequence[str] | None = None) -> list[Alert]:
    """The built-in alerts (builtin.yaml); ``log_groups`` replaces their log groups when given."""
    data = yaml.safe_load(resources.files("corrtrace.alerts").joinpath("builtin.yaml").read_text(encoding="utf-8"))
    if log_groups is not None:
        for item in data["alerts"]:
            item["log_groups"] = list(log_groups)
    return parse_alerts(data, "builtin.yaml")

"""Alert file validation: every error names the alert and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from corrtrace.alerts import AlertDefinitionError, builtin_alerts, load_alerts, parse_alerts


def alert(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "a1",
        "log_groups": ["/g"],
        "pattern": '{ $.event.outcome = "failure" }',
        "metric": {"namespace": "corrtrace", "name": "Failures"},
        "alarm": {"threshold": 1},
    }
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


BAD = [
    (
        alert(metric={"namespace": "n", "name": "m", "dimensions": {"cid": "$.correlation_id"}}),
        "metric.dimensions.cid",
        "correlation ID",
    ),
    (
        alert(metric={"namespace": "n", "name": "m", "dimensions": {"correlation_id": "$.service.name"}}),
        "metric.dimensions.correlation_id",
        "correlation ID",
    ),
    (
        alert(
            metric={"namespace": "n", "name": "m", "default": 0, "dimensions": {"svc": "$.service.name"}},
            alarm={"dimensions": {"svc": "x"}},
        ),
        "metric.default",
        "not allowed together with dimensions",
    ),
    (
        alert(pattern="ERROR", metric={"namespace": "n", "name": "m", "dimensions": {"s": "$.a"}}),
        "metric.dimensions",
        "need a JSON or space-delimited filter pattern",
    ),
    (alert(pattern="{ $.a = "), "pattern", "position 8"),
    (alert(metric={"namespace": "n", "name": "m", "value": "$size"}), "metric.value", "space-delimited"),
    (
        alert(pattern="[a, b]", metric={"namespace": "n", "name": "m", "value": "$size"}),
        "metric.value",
        "not a field of the pattern",
    ),
    (alert(metric={"namespace": "n", "name": "m", "unit": "Parsecs"}), "metric.unit", "StandardUnit"),
    (alert(metric={"namespace": "n:x", "name": "m"}), "metric.namespace", "does not match"),
    (alert(alarm={"period": 45}), "alarm.period", "not 10, 20, 30 or a multiple of 60"),
    (alert(alarm={"evaluation_periods": 2, "datapoints_to_alarm": 3}), "alarm.datapoints_to_alarm", "more than"),
    (alert(alarm={"treat_missing_data": "maybe"}), "alarm.treat_missing_data", "expected one of"),
    (alert(alarm={"statistic": "Median"}), "alarm.statistic", "percentile"),
    (alert(alarm={"comparison": "LessThanLowerOrGreaterThanUpperThreshold"}), "alarm.comparison", "expected one of"),
    (alert(alarm={"period": 3600, "evaluation_periods": 25}), "alarm.evaluation_periods", "one day"),
    (
        alert(metric={"namespace": "n", "name": "m", "dimensions": {"svc": "$.service.name"}}),
        "alarm.dimensions",
        "exactly the metric's dimensions",
    ),
    (alert(actions=[{"type": "pager"}]), "actions[0].type", "expected one of"),
    (alert(actions=[{"type": "sns"}]), "actions[0].topic_arn", "needs an ARN"),
    (alert(log_groups=["bad group!"]), "log_groups[0]", "does not match"),
    (alert(colour="red"), "colour", "unknown key"),
    (alert(metric=None, alarm=None), "metric", "needs a metric"),
    (alert(metric=None), "alarm", "needs a metric"),
    (alert(jam={"threshold": 1}), "jam.threshold", ">= 2"),
]


@pytest.mark.parametrize(("raw", "field", "words"), BAD)
def test_invalid_alert_names_alert_and_field(raw: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(AlertDefinitionError) as info:
        parse_alerts([raw])
    message = str(info.value)
    assert message.startswith("alert 'a1': field ")
    assert f"'{field}'" in message
    assert words in message


def test_group_quotas_and_duplicates() -> None:
    subs = [alert(name=f"s{i}", subscribe=True) for i in range(3)]
    with pytest.raises(AlertDefinitionError, match="more than 2 subscription filters"):
        parse_alerts(subs)
    regexes = [alert(name=f"r{i}", pattern="%ERR%") for i in range(6)]
    with pytest.raises(AlertDefinitionError, match="more than 5 filter patterns containing a regex"):
        parse_alerts(regexes)
    with pytest.raises(AlertDefinitionError, match="defined twice"):
        parse_alerts([alert(), alert()])


def test_valid_file_round_trip(tmp_path: Path) -> None:
    file = tmp_path / "alerts.yaml"
    file.write_text(
        """
alerts:
  - name: slow-checkout
    log_groups: [/corrtrace/checkout]
    pattern: '{ $.service.name = "checkout" && $.event.duration > 500000000 }'
    metric: {namespace: corrtrace, name: SlowCheckout, value: $.event.duration, dimensions: {svc: $.service.name}}
    alarm: {statistic: p90, period: 60, evaluation_periods: 5, datapoints_to_alarm: 3, threshold: 1e9,
            comparison: GreaterThanThreshold, treat_missing_data: ignore, dimensions: {svc: checkout}}
    actions: [{type: sns, topic_arn: "arn:aws:sns:us-east-1:123456789012:ops"}, txmanager]
"""
    )
    (a,) = load_alerts(file)
    assert a.alarm is not None and a.alarm.statistic == "p90" and a.alarm.treat_missing_data == "ignore"
    assert [s.type for s in a.actions] == ["sns", "txmanager"]
    event = {"service": {"name": "checkout"}, "event": {"duration": 600000000}}
    assert a.pattern.matches_parsed(event)
    assert a.metric_value("", event, None) == 600000000.0
    assert a.dimensions("", event, None) == {"svc": "checkout"}
    with pytest.raises(AlertDefinitionError, match="no such alert file"):
        load_alerts(tmp_path / "missing.yaml")


def test_builtin_alerts_cover_the_talk() -> None:
    names = {a.name: a for a in builtin_alerts()}
    assert set(names) == {
        "errors-and-exceptions",
        "lambda-code-errors",
        "business-failures",
        "high-latency",
        "stream-jam",
    }
    assert names["errors-and-exceptions"].pattern.matches("checkout-svc ERROR [uuid-123] payment declined")
    assert names["errors-and-exceptions"].pattern.matches("Traceback ... ValueError: bad")
    assert names["lambda-code-errors"].pattern.matches("[ERROR] First test message")
    assert names["lambda-code-errors"].pattern.matches("2024-01-01 Task timed out after 3.00 seconds")
    assert names["business-failures"].pattern.matches('{"event": {"outcome": "failure"}}')
    assert not names["business-failures"].pattern.matches('{"event": {"outcome": "success"}}')
    jam = names["stream-jam"]
    assert jam.jam is not None and jam.jam.threshold == 3
    assert builtin_alerts(["/other"])[0].log_groups == ("/other",)


def test_regex_quota_counts_embedded_regexes_only() -> None:
    json_regex = [alert(name=f"j{i}", pattern="{ $.a = %x% }") for i in range(6)]
    with pytest.raises(AlertDefinitionError, match="containing a regex"):
        parse_alerts(json_regex)
    delimited = [alert(name=f"d{i}", pattern="[a=%x%, b]", metric={"namespace": "n", "name": "m"}) for i in range(6)]
    with pytest.raises(AlertDefinitionError, match="containing a regex"):
        parse_alerts(delimited)
    literal_percent = [alert(name=f"p{i}", pattern='{ $.a = "100%" }') for i in range(6)]
    assert len(parse_alerts(literal_percent)) == 6

"""Deploy against a moto server: creates everything, a second deploy changes nothing, a changed threshold is
one update, and --dry-run writes nothing. moto stores but never evaluates: only the control plane is asserted."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from corrtrace.alerts import AlertDefinitionError, builtin_alerts, parse_alerts
from corrtrace.alerts.cli import alerts as alerts_cli
from corrtrace.alerts.deploy import Deployer


def handler_arn(aws: Any) -> str:
    role = aws("iam").create_role(RoleName="alert-handler", AssumeRolePolicyDocument=json.dumps({"Statement": []}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(event, context):\n    return None\n")
    created = aws("lambda").create_function(
        FunctionName="corrtrace-alert-handler",
        Runtime="python3.11",
        Role=role["Role"]["Arn"],
        Handler="h.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    return str(created["FunctionArn"])


def test_deploy_builtins_is_idempotent(aws: Any) -> None:
    arn = handler_arn(aws)
    logs, cw = aws("logs"), aws("cloudwatch")
    deployer = Deployer(logs, cw, handler_arn=arn, lambda_client=aws("lambda"))
    alerts = builtin_alerts(["/corrtrace/test"])
    first = deployer.deploy(alerts)
    kinds = sorted((c.resource, c.action) for c in first)
    assert ("log-group", "create") in kinds
    assert sum(1 for c in first if c.resource == "metric-filter" and c.action == "create") == 4
    assert sum(1 for c in first if c.resource == "alarm" and c.action == "create") == 4
    assert sum(1 for c in first if c.resource == "subscription-filter" and c.action == "create") == 2

    filters = logs.describe_metric_filters(logGroupName="/corrtrace/test")["metricFilters"]
    by_name = {f["filterName"]: f for f in filters}
    assert by_name["corrtrace-business-failures"]["filterPattern"] == '{ $.event.outcome = "failure" }'
    assert by_name["corrtrace-high-latency"]["metricTransformations"][0]["metricValue"] == "$.event.duration"
    subs = logs.describe_subscription_filters(logGroupName="/corrtrace/test")["subscriptionFilters"]
    assert {s["destinationArn"] for s in subs} == {arn}
    alarms = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
    assert alarms["errors-and-exceptions"]["AlarmActions"] == [arn]
    assert alarms["high-latency"]["DatapointsToAlarm"] == 2 and alarms["high-latency"]["AlarmActions"] == []

    policy = json.loads(aws("lambda").get_policy(FunctionName=arn)["Policy"])
    principals = sorted(
        {
            st["Principal"]["Service"] if isinstance(st["Principal"], dict) else st["Principal"]
            for st in policy["Statement"]
        }
    )
    assert principals == ["lambda.alarms.cloudwatch.amazonaws.com", "logs.amazonaws.com"]
    assert sum(1 for c in first if c.resource == "lambda-permission") == 4  # 1 log group + 3 txmanager alarms

    second = deployer.deploy(alerts)
    assert [c for c in second if c.action != "unchanged"] == []


def test_changed_threshold_is_one_update_and_dry_run_writes_nothing(aws: Any, tmp_path: Path) -> None:
    logs, cw = aws("logs"), aws("cloudwatch")
    doc: dict[str, Any] = {
        "alerts": [
            {
                "name": "payments-5xx",
                "log_groups": ["/corrtrace/payments"],
                "pattern": "[ip, user, username, timestamp, request, status_code=5*, bytes]",
                "metric": {"namespace": "corrtrace", "name": "Payments5xx", "dimensions": {"status": "$status_code"}},
                "alarm": {"threshold": 3, "dimensions": {"status": "503"}},
                "actions": [{"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:ops"}],
            }
        ]
    }
    Deployer(logs, cw).deploy(parse_alerts(doc))
    doc["alerts"][0]["alarm"]["threshold"] = 5
    changed = parse_alerts(doc)
    dry = Deployer(logs, cw).deploy(changed, dry_run=True)
    updates = [c for c in dry if c.action == "update"]
    assert [(c.resource, c.diff) for c in updates] == [("alarm", {"Threshold": (3.0, 5.0)})]
    assert cw.describe_alarms(AlarmNames=["payments-5xx"])["MetricAlarms"][0]["Threshold"] == 3.0

    file = tmp_path / "alerts.yaml"
    file.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(alerts_cli, ["deploy", "--file", str(file), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [c["action"] for c in out["changes"] if c["resource"] == "alarm"] == ["update"]
    alarm = cw.describe_alarms(AlarmNames=["payments-5xx"])["MetricAlarms"][0]
    assert alarm["Threshold"] == 5.0 and alarm["Dimensions"] == [{"Name": "status", "Value": "503"}]
    again = CliRunner().invoke(alerts_cli, ["deploy", "--file", str(file), "--dry-run"])
    assert again.exit_code == 0 and "= alarm payments-5xx" in again.output and "~" not in again.output


def test_deploy_refuses_subscription_without_handler(aws: Any) -> None:
    with pytest.raises(AlertDefinitionError, match="'subscribe'"):
        Deployer(aws("logs"), aws("cloudwatch")).plan(builtin_alerts(["/x"]))
    result = CliRunner().invoke(alerts_cli, ["deploy"])
    assert result.exit_code == 2 and "--handler-arn" in result.output


def test_deploy_removes_what_the_file_no_longer_holds_and_only_that(aws: Any, tmp_path: Path) -> None:
    arn = handler_arn(aws)
    logs, cw, lam = aws("logs"), aws("cloudwatch"), aws("lambda")
    deployer = Deployer(logs, cw, handler_arn=arn, lambda_client=lam)
    everything = builtin_alerts(["/corrtrace/test"])
    deployer.deploy(everything)
    # resources corrtrace did not create, on the same group and namespace: never touched
    logs.put_metric_filter(
        logGroupName="/corrtrace/test",
        filterName="team-filter",
        filterPattern="ERROR",
        metricTransformations=[{"metricName": "TeamErrors", "metricNamespace": "corrtrace", "metricValue": "1"}],
    )
    cw.put_metric_alarm(
        AlarmName="team-alarm",
        MetricName="TeamErrors",
        Namespace="corrtrace",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    kept = [a for a in everything if a.name == "errors-and-exceptions"]
    assert len(kept) == 1

    plan = deployer.deploy(kept, dry_run=True)
    deletes = sorted((c.resource, c.name) for c in plan if c.action == "delete")
    gone = [a for a in everything if a.name != "errors-and-exceptions"]
    assert sorted(n for r, n in deletes if r == "metric-filter") == sorted(
        f"/corrtrace/test:{a.filter_name}" for a in gone if a.metric
    )
    assert sorted(n for r, n in deletes if r == "alarm") == sorted(a.alarm_name for a in gone if a.alarm)
    assert {n for r, n in deletes if r == "subscription-filter"} == {
        f"/corrtrace/test:{a.subscription_name}" for a in gone if a.subscribe
    } - {f"/corrtrace/test:{a.subscription_name}" for a in kept if a.subscribe}
    assert not any("team-" in n for _, n in deletes)
    assert len(logs.describe_metric_filters(logGroupName="/corrtrace/test")["metricFilters"]) == 5  # dry run

    file = tmp_path / "alerts.yaml"
    file.write_text(
        yaml.safe_dump(
            {
                "alerts": [
                    {
                        "name": "errors-and-exceptions",
                        "pattern": "?ERROR ?Exception",
                        "log_groups": ["/corrtrace/test"],
                        "metric": {"namespace": "corrtrace", "name": "Errors"},
                        "alarm": {"threshold": 1},
                        "actions": ["txmanager"],
                    }
                ]
            }
        )
    )
    dry = CliRunner().invoke(alerts_cli, ["deploy", "--file", str(file), "--handler-arn", arn, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "- alarm high-latency" in dry.output and "to delete (dry run, nothing written)" in dry.output

    deployer.deploy(kept)
    names = {f["filterName"] for f in logs.describe_metric_filters(logGroupName="/corrtrace/test")["metricFilters"]}
    assert names == {k.filter_name for k in kept} | {"team-filter"}
    alarms = {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]}
    assert alarms == {k.alarm_name for k in kept} | {"team-alarm"}
    subs = logs.describe_subscription_filters(logGroupName="/corrtrace/test")["subscriptionFilters"]
    assert {s["filterName"] for s in subs} == {k.subscription_name for k in kept if k.subscribe}
    sids = {st["Sid"] for st in json.loads(lam.get_policy(FunctionName=arn)["Policy"])["Statement"]}
    assert sids == {c.name for c in deployer.plan(kept) if c.resource == "lambda-permission"}
    assert [c for c in deployer.deploy(kept) if c.action != "unchanged"] == []
    # --no-prune keeps what is deployed even when the file shrinks to nothing
    assert [c for c in deployer.deploy([], prune=False) if c.action == "delete"] == []

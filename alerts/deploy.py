"""Deploy an alert file to CloudWatch: metric filters, alarms and subscription filters to the alert-handler
Lambda. Idempotent: the current resources are read first and only differences are written; ``dry_run``
returns the same plan without writing anything.

The file is the whole truth: what corrtrace deployed earlier and the file no longer holds is deleted (``prune``).
Only corrtrace's own resources are candidates, recognised by what only corrtrace writes: the ``corrtrace-``
filter-name prefix, the ``corrtrace:managed-by`` alarm tag, the ``corrtrace-`` permission statement ids. Log
groups are never deleted: they hold the logs (alerts/README.md, "Operating it")."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from corrtrace.alerts.definitions import Alert, AlertDefinitionError

CREATE, UPDATE, UNCHANGED, DELETE = "create", "update", "unchanged", "delete"
OWNER_TAG = {"Key": "corrtrace:managed-by", "Value": "corrtrace alerts deploy"}
NAME_PREFIX = "corrtrace-"
_SID_PREFIXES = ("corrtrace-logs-", "corrtrace-alarm-")


@dataclass
class Change:
    """One resource and what deploying it does."""

    resource: str  # log-group | lambda-permission | metric-filter | alarm | subscription-filter
    name: str
    action: str
    diff: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "name": self.name,
            "action": self.action,
            "diff": {k: {"old": o, "new": n} for k, (o, n) in self.diff.items()},
        }

    def describe(self) -> str:
        mark = {CREATE: "+", UPDATE: "~", UNCHANGED: "=", DELETE: "-"}[self.action]
        details = ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in self.diff.items())
        return f"{mark} {self.resource} {self.name}" + (f" ({details})" if details and self.action == UPDATE else "")


def _alarm_actions(alert: Alert, handler_arn: str | None) -> list[str]:
    arns: list[str] = []
    for action in alert.actions:
        if action.type == "txmanager":
            if handler_arn:
                arns.append(handler_arn)
        else:
            arns.append(action.target)
    return list(dict.fromkeys(arns))


def metric_filter_request(alert: Alert, group: str) -> dict[str, Any]:
    assert alert.metric is not None
    m = alert.metric
    transformation: dict[str, Any] = {"metricName": m.name, "metricNamespace": m.namespace, "metricValue": m.value}
    if m.default is not None:
        transformation["defaultValue"] = m.default
    if m.dimensions:
        transformation["dimensions"] = dict(m.dimensions)
    if m.unit:
        transformation["unit"] = m.unit
    return {
        "logGroupName": group,
        "filterName": alert.filter_name,
        "filterPattern": alert.pattern.text,
        "metricTransformations": [transformation],
    }


def alarm_request(alert: Alert, handler_arn: str | None) -> dict[str, Any]:
    assert alert.metric is not None and alert.alarm is not None
    a, m = alert.alarm, alert.metric
    request: dict[str, Any] = {
        "AlarmName": alert.alarm_name,
        "AlarmDescription": (a.description or alert.description)[:1024],
        "MetricName": m.name,
        "Namespace": m.namespace,
        "Period": a.period,
        "EvaluationPeriods": a.evaluation_periods,
        "DatapointsToAlarm": a.datapoints_to_alarm,
        "Threshold": a.threshold,
        "ComparisonOperator": a.comparison,
        "TreatMissingData": a.treat_missing_data,
        "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(a.dimensions.items())],
        "AlarmActions": _alarm_actions(alert, handler_arn),
        "ActionsEnabled": True,
        "Tags": [OWNER_TAG],
    }
    if a.statistic.startswith("p"):
        request["ExtendedStatistic"] = a.statistic
    else:
        request["Statistic"] = a.statistic
    if m.unit:
        request["Unit"] = m.unit
    return request


def subscription_request(alert: Alert, group: str, handler_arn: str) -> dict[str, Any]:
    return {
        "logGroupName": group,
        "filterName": alert.subscription_name,
        "filterPattern": alert.pattern.text,
        "destinationArn": handler_arn,
    }


def _diff(current: dict[str, Any] | None, desired: dict[str, Any], keys: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for key in keys:
        old = None if current is None else current.get(key)
        new = desired.get(key)
        if _norm(old) != _norm(new):
            out[key] = (old, new)
    return out


def _norm(value: Any) -> Any:
    if value in (None, "", [], {}):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in sorted(value.items()) if _norm(v) is not None}
    return value


def _transformation(filter_: dict[str, Any] | None) -> dict[str, Any] | None:
    if filter_ is None:
        return None
    items = filter_.get("metricTransformations") or [{}]
    return dict(items[0])


def _sid(prefix: str, name: str) -> str:
    """A Lambda policy statement id (``[A-Za-z0-9_-]``, at most 100 characters) for one log group or alarm."""
    return (prefix + re.sub(r"[^A-Za-z0-9_-]", "-", name))[:100]


class Deployer:
    """Plans and applies the CloudWatch resources of an alert file.

    With a Lambda client, the handler also gets the resource-policy statements that let CloudWatch Logs
    (subscriptions) and CloudWatch alarms invoke it; without them AWS rejects the subscription filter.
    """

    def __init__(
        self, logs: Any, cloudwatch: Any, *, handler_arn: str | None = None, lambda_client: Any = None
    ) -> None:
        self.logs = logs
        self.cloudwatch = cloudwatch
        self.handler_arn = handler_arn
        self.lambda_client = lambda_client

    def plan(self, alerts: Sequence[Alert], *, prune: bool = True) -> list[Change]:
        """What deploying ``alerts`` changes; with ``prune``, also what it deletes (see the module docstring)."""
        changes: list[Change] = []
        groups = sorted({g for a in alerts for g in a.log_groups if a.metric or a.subscribe})
        for alert in alerts:
            if (alert.metric or alert.subscribe) and not alert.log_groups:
                raise AlertDefinitionError(f"alert {alert.name!r}: field 'log_groups': deploy needs at least one")
            if alert.subscribe and not self.handler_arn:
                raise AlertDefinitionError(
                    f"alert {alert.name!r}: field 'subscribe': deploy needs the handler Lambda ARN (--handler-arn)"
                )
        for group in groups:
            found = self.logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
            exists = any(g["logGroupName"] == group for g in found)
            changes.append(Change("log-group", group, UNCHANGED if exists else CREATE, request={"logGroupName": group}))
        existing_groups = {c.name for c in changes if c.action == UNCHANGED}
        changes += self._plan_permissions(alerts)
        for alert in alerts:
            for group in alert.log_groups:
                if alert.metric:
                    changes.append(self._plan_metric_filter(alert, group, group in existing_groups))
                if alert.subscribe and self.handler_arn:
                    changes.append(self._plan_subscription(alert, group, group in existing_groups))
            if alert.alarm:
                changes.append(self._plan_alarm(alert))
        if prune:
            changes += self._plan_deletions(alerts, groups)
        return changes

    def _plan_deletions(self, alerts: Sequence[Alert], groups: Sequence[str]) -> list[Change]:
        """corrtrace's resources that the file no longer holds."""
        wanted_filters = {(g, a.filter_name) for a in alerts if a.metric for g in a.log_groups}
        wanted_subs = {(g, a.subscription_name) for a in alerts if a.subscribe for g in a.log_groups}
        wanted_alarms = {a.alarm_name for a in alerts if a.alarm}
        owned_filters = [
            f
            for page in self.logs.get_paginator("describe_metric_filters").paginate()
            for f in page.get("metricFilters", [])
            if str(f.get("filterName", "")).startswith(NAME_PREFIX)
        ]
        changes = [
            Change(
                "metric-filter",
                f"{f['logGroupName']}:{f['filterName']}",
                DELETE,
                request={"logGroupName": f["logGroupName"], "filterName": f["filterName"]},
            )
            for f in owned_filters
            if (f["logGroupName"], f["filterName"]) not in wanted_filters
        ]
        # subscription filters need a log group: those of the file and those holding corrtrace's metric filters
        for group in sorted({*groups, *(f["logGroupName"] for f in owned_filters)}):
            try:
                found = self.logs.describe_subscription_filters(logGroupName=group, filterNamePrefix=NAME_PREFIX)
            except self.logs.exceptions.ResourceNotFoundException:
                continue
            changes += [
                Change(
                    "subscription-filter",
                    f"{group}:{f['filterName']}",
                    DELETE,
                    request={"logGroupName": group, "filterName": f["filterName"]},
                )
                for f in found.get("subscriptionFilters", [])
                if (group, f["filterName"]) not in wanted_subs
            ]
        changes += [
            Change("alarm", name, DELETE, request={"AlarmNames": [name]})
            for name in self._owned_alarms(alerts, owned_filters)
            if name not in wanted_alarms
        ]
        if self.lambda_client is not None and self.handler_arn:
            wanted_sids = {c.name for c in self._plan_permissions(alerts)}
            changes += [
                Change("lambda-permission", sid, DELETE, request={"FunctionName": self.handler_arn, "StatementId": sid})
                for sid in sorted(self._policy_sids())
                if sid.startswith(_SID_PREFIXES) and sid not in wanted_sids
            ]
        return changes

    def _owned_alarms(self, alerts: Sequence[Alert], owned_filters: Sequence[dict[str, Any]]) -> list[str]:
        """Alarms carrying corrtrace's tag, among those on the namespaces corrtrace's metric filters write to."""
        namespaces = {a.metric.namespace for a in alerts if a.metric}
        namespaces |= {t["metricNamespace"] for f in owned_filters for t in f.get("metricTransformations", [])}
        owned: list[str] = []
        for page in self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                if alarm.get("Namespace") not in namespaces:
                    continue
                tags = self.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", [])
                if OWNER_TAG in tags:
                    owned.append(alarm["AlarmName"])
        return owned

    def _plan_permissions(self, alerts: Sequence[Alert]) -> list[Change]:
        if self.lambda_client is None or not self.handler_arn:
            return []
        parts = self.handler_arn.split(":")
        if len(parts) < 7 or parts[2] != "lambda":
            raise AlertDefinitionError(f"--handler-arn {self.handler_arn!r} is not a Lambda function ARN")
        region, account = parts[3], parts[4]
        wanted: dict[str, dict[str, Any]] = {}
        for alert in alerts:
            if alert.subscribe:
                for group in alert.log_groups:
                    sid = _sid("corrtrace-logs-", group)
                    wanted[sid] = {
                        "Principal": "logs.amazonaws.com",
                        "SourceArn": f"arn:aws:logs:{region}:{account}:log-group:{group}:*",
                    }
            if alert.alarm and self.handler_arn in _alarm_actions(alert, self.handler_arn):
                wanted[_sid("corrtrace-alarm-", alert.alarm_name)] = {
                    "Principal": "lambda.alarms.cloudwatch.amazonaws.com",
                    "SourceArn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{alert.alarm_name}",
                }
        existing = self._policy_sids()
        changes = []
        for sid, spec in wanted.items():
            request = {
                "FunctionName": self.handler_arn,
                "StatementId": sid,
                "Action": "lambda:InvokeFunction",
                **spec,
            }
            changes.append(Change("lambda-permission", sid, UNCHANGED if sid in existing else CREATE, request=request))
        return changes

    def _policy_sids(self) -> set[str]:
        try:
            policy = self.lambda_client.get_policy(FunctionName=self.handler_arn)
        except Exception as exc:  # no policy yet (ResourceNotFoundException)
            if "ResourceNotFound" in type(exc).__name__ or "ResourceNotFound" in str(exc):
                return set()
            raise
        statements = json.loads(policy.get("Policy") or "{}").get("Statement", [])
        return {str(st.get("Sid")) for st in statements}

    def _plan_metric_filter(self, alert: Alert, group: str, group_exists: bool) -> Change:
        desired = metric_filter_request(alert, group)
        current = None
        if group_exists:
            found = self.logs.describe_metric_filters(logGroupName=group, filterNamePrefix=alert.filter_name)
            current = next((f for f in found.get("metricFilters", []) if f["filterName"] == alert.filter_name), None)
        diff = _diff(current, desired, ["filterPattern"])
        want, have = _transformation(desired), _transformation(current)
        assert want is not None
        keys = ("metricName", "metricNamespace", "metricValue", "defaultValue", "dimensions", "unit")
        diff.update({f"metricTransformations.{k}": v for k, v in _diff(have, want, keys).items()})
        return self._change("metric-filter", f"{group}:{alert.filter_name}", current, diff, desired)

    def _plan_subscription(self, alert: Alert, group: str, group_exists: bool) -> Change:
        assert self.handler_arn
        desired = subscription_request(alert, group, self.handler_arn)
        current = None
        if group_exists:
            found = self.logs.describe_subscription_filters(
                logGroupName=group, filterNamePrefix=alert.subscription_name
            )
            current = next(
                (f for f in found.get("subscriptionFilters", []) if f["filterName"] == alert.subscription_name), None
            )
        diff = _diff(current, desired, ["filterPattern", "destinationArn"])
        return self._change("subscription-filter", f"{group}:{alert.subscription_name}", current, diff, desired)

    def _plan_alarm(self, alert: Alert) -> Change:
        desired = alarm_request(alert, self.handler_arn)
        found = self.cloudwatch.describe_alarms(AlarmNames=[alert.alarm_name], AlarmTypes=["MetricAlarm"])
        current = next(iter(found.get("MetricAlarms", [])), None)
        if current is not None:
            current = dict(current)
            current["Dimensions"] = sorted(current.get("Dimensions") or [], key=lambda d: d["Name"])
        keys = [k for k in desired if k not in ("ActionsEnabled", "Tags")]
        return self._change("alarm", alert.alarm_name, current, _diff(current, desired, keys), desired)

    @staticmethod
    def _change(
        resource: str, name: str, current: Any, diff: dict[str, tuple[Any, Any]], request: dict[str, Any]
    ) -> Change:
        action = CREATE if current is None else (UPDATE if diff else UNCHANGED)
        return Change(resource, name, action, diff if action == UPDATE else {}, request)

    def apply(self, changes: Sequence[Change]) -> None:
        """Write every created or updated resource (log groups first: the filters need them), then delete."""
        for change in changes:
            if change.action == DELETE:
                self._delete(change)
                continue
            if change.action == UNCHANGED:
                continue
            if change.resource == "log-group":
                self.logs.create_log_group(**change.request)
            elif change.resource == "lambda-permission":
                self.lambda_client.add_permission(**change.request)
            elif change.resource == "metric-filter":
                self.logs.put_metric_filter(**change.request)
            elif change.resource == "subscription-filter":
                self.logs.put_subscription_filter(**change.request)
            elif change.resource == "alarm":
                self.cloudwatch.put_metric_alarm(**change.request)
                if change.action == UPDATE:  # PutMetricAlarm ignores Tags on an existing alarm
                    arn = self.cloudwatch.describe_alarms(AlarmNames=[change.name])["MetricAlarms"][0]["AlarmArn"]
                    self.cloudwatch.tag_resource(ResourceARN=arn, Tags=[OWNER_TAG])

    def _delete(self, change: Change) -> None:
        if change.resource == "metric-filter":
            self.logs.delete_metric_filter(**change.request)
        elif change.resource == "subscription-filter":
            self.logs.delete_subscription_filter(**change.request)
        elif change.resource == "alarm":
            self.cloudwatch.delete_alarms(**change.request)
        elif change.resource == "lambda-permission":
            self.lambda_client.remove_permission(**change.request)

    def deploy(self, alerts: Sequence[Alert], *, dry_run: bool = False, prune: bool = True) -> list[Change]:
        changes = self.plan(alerts, prune=prune)
        if not dry_run:
            self.apply(changes)
        return changes

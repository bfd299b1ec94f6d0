"""corrtrace.alerts: CloudWatch Logs filter patterns, alert definitions, local alarm evaluation, deploy, handler."""

from corrtrace.alerts.actions import Action, AlarmNotification, CallbackAction, LambdaAction, SnsAction, TxManagerAction
from corrtrace.alerts.definitions import Alert, AlertDefinitionError, builtin_alerts, load_alerts, parse_alerts
from corrtrace.alerts.engine import AlertEngine
from corrtrace.alerts.evaluator import AlarmEvaluator
from corrtrace.alerts.jam import JamDetector
from corrtrace.alerts.patterns import FilterPattern, PatternError, compile_pattern

__all__ = [
    "Action",
    "AlarmEvaluator",
    "AlarmNotification",
    "Alert",
    "AlertDefinitionError",
    "AlertEngine",
    "CallbackAction",
    "FilterPattern",
    "JamDetector",
    "LambdaAction",
    "PatternError",
    "SnsAction",
    "TxManagerAction",
    "builtin_alerts",
    "compile_pattern",
    "load_alerts",
    "parse_alerts",
]

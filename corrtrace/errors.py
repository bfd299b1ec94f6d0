"""The one exception tree of corrtrace: catch ``CorrtraceError`` for anything corrtrace raises on purpose.

Modelled on httpx's ``_exceptions.py``: one documented tree, each class saying when it is raised. Errors that
belong to one part stay in that part (so their module documents them) but derive from a class here::

    CorrtraceError
    ├── InvalidInput (also ValueError): something a person wrote is wrong; the message is one line for them
    │   ├── ConfigError            corrtrace.config: a configuration value
    │   ├── FormatError            corrtrace.collector.parsers: a declared line format
    │   ├── PatternError           corrtrace.alerts.patterns: a CloudWatch filter pattern (with its position)
    │   ├── AlertDefinitionError   corrtrace.alerts.definitions: an alert file
    │   └── MalformedRecord        corrtrace.txmanager.failures: a failure report on the channel
    ├── StateError (also ValueError): a state file corrtrace wrote is damaged; the message says what to do
    ├── DeliveryError: a backend call failed
    │   ├── TransientError         worth retrying (connection, 429, 5xx)
    │   └── PermanentError         a retry will not fix it (bad auth, bad request)
    ├── SignatureError             corrtrace.signing: a signed call is not authentic
    ├── TxManagerError             corrtrace.txmanager.client: a call to the transaction manager failed
    ├── ConflictError, StoreError  corrtrace.txmanager.store: a transaction's state forbids the action / the table
    │                              holds what it never should
    └── GrafanaError               corrtrace.dashboards.grafana_api: a Grafana call failed

Not errors, so not in the tree: ``corrtrace.backoff.Stopped`` (a retry loop was asked to stop) and
``corrtrace.txmanager.triggers.Retry``/``Refused`` (what a trigger tells the channel to do with a record).
"""

from __future__ import annotations

__all__ = ["CorrtraceError", "DeliveryError", "InvalidInput", "PermanentError", "StateError", "TransientError"]


class CorrtraceError(Exception):
    """The root: every error corrtrace raises on purpose derives from it."""


class InvalidInput(CorrtraceError, ValueError):
    """Something a person wrote (a setting, a pattern, a format, a record) is wrong; ``str()`` is one line."""


class StateError(CorrtraceError, ValueError):
    """A state file in the data directory (checkpoint, embedded store) is damaged; the message says what to do."""


class DeliveryError(CorrtraceError):
    """A request to a backend (Elasticsearch, OpenSearch, ...) failed as a whole."""


class TransientError(DeliveryError):
    """The whole request failed in a way worth retrying (connection, 429, 5xx)."""


class PermanentError(DeliveryError):
    """The whole request was refused for a reason a retry will not fix (bad auth, bad request)."""

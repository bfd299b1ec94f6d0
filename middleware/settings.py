"""Middleware settings as one immutable object (the asgi-correlation-id style), shared by every adapter.

A plain slotted class, not a ``@dataclass``: ``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``,
``tokenize``), which would cost a Lambda cold start more than the rest of the wrapper. It behaves like a frozen
dataclass: keyword (or positional) fields with defaults, ``==``, a readable ``repr``, assignment refused, and
``settings.replace(**changes)`` for ``dataclasses.replace``.

The derived byte forms of the header names are computed once here so that the per-request path only compares
bytes it already has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corrtrace.ids import DEFAULT_POLICY, IdPolicy

DEFAULT_HEADER = "X-Correlation-ID"


_FIELDS = (  # in declaration order: positional order, repr, equality
    "header_name",
    "fallback_headers",
    "policy",
    "echo_header",
    "expose_header",
    "update_request_header",
    "access_log",
    "access_logger",
    "tracing",
    "tracer_provider",
    "message_attribute",
    "service_map",
    "outbound_logger",
    "propagate_dynamodb",
    "propagate_kinesis",
    "skip_paths",
    "correlation_id_path",
)


_FLAGS = (
    "echo_header",
    "expose_header",
    "update_request_header",
    "access_log",
    "tracing",
    "propagate_dynamodb",
    "propagate_kinesis",
)


def _check_header(field: str, name: object) -> None:
    if type(name) is not str:
        raise TypeError(f"CorrelationSettings.{field} must hold header names (strings), got {name!r}")
    if not name or not name.isascii() or any(c in name for c in ":\r\n "):
        raise ValueError(f"CorrelationSettings.{field} must be a plain ASCII header name, got {name!r}")


class CorrelationSettings:
    """How the correlation ID is read, echoed, logged and propagated.

    ``message_attribute`` names the carrier outside HTTP: the SQS/SNS message attribute, the EventBridge
    ``detail`` key, the DynamoDB item attribute and the Kinesis JSON field. ``skip_paths``: HTTP paths with no
    access line and no span. ``correlation_id_path`` (Lambda): a JMESPath to the ID in the event, tried first
    (Powertools' names in ``aws_lambda.correlation_paths``).
    """

    __slots__ = _FIELDS
    header_name: str
    fallback_headers: tuple[str, ...]
    policy: IdPolicy
    echo_header: bool
    expose_header: bool
    update_request_header: bool
    access_log: bool
    access_logger: str
    tracing: bool
    tracer_provider: Any
    message_attribute: str
    service_map: Mapping[str, str]
    outbound_logger: str
    propagate_dynamodb: bool
    propagate_kinesis: bool
    skip_paths: tuple[str, ...]
    correlation_id_path: str | None

    def __init__(
        self,
        header_name: str = DEFAULT_HEADER,
        fallback_headers: tuple[str, ...] = ("X-Request-ID",),
        policy: IdPolicy = DEFAULT_POLICY,
        echo_header: bool = True,
        expose_header: bool = True,
        update_request_header: bool = False,
        access_log: bool = True,
        access_logger: str = "corrtrace.access",
        tracing: bool = False,
        tracer_provider: Any = None,
        message_attribute: str = "correlation_id",
        service_map: Mapping[str, str] | None = None,
        outbound_logger: str = "corrtrace.outbound",
        propagate_dynamodb: bool = False,
        propagate_kinesis: bool = False,
        skip_paths: tuple[str, ...] = (),
        correlation_id_path: str | None = None,
    ) -> None:
        _check_header("header_name", header_name)
        if isinstance(fallback_headers, str):
            raise TypeError("CorrelationSettings.fallback_headers must be a tuple of names, not one string")
        for name in fallback_headers:
            _check_header("fallback_headers", name)
        if isinstance(skip_paths, str):
            raise TypeError("CorrelationSettings.skip_paths must be a sequence of paths, not one string")
        if not all(type(path) is str for path in skip_paths):
            raise TypeError(f"CorrelationSettings.skip_paths must hold strings, got {list(skip_paths)!r}")
        values = locals()
        for name in _FLAGS:  # "false" from an environment variable would otherwise switch a flag on
            if type(values[name]) is not bool:
                raise TypeError(f"CorrelationSettings.{name} must be True or False, got {values[name]!r}")
        for name in _FIELDS:
            object.__setattr__(self, name, values[name])
        object.__setattr__(self, "service_map", {} if service_map is None else service_map)
        object.__setattr__(self, "skip_paths", tuple(skip_paths))

    def replace(self, **changes: Any) -> CorrelationSettings:
        """A copy with ``changes`` applied (what ``dataclasses.replace`` does for a dataclass)."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise TypeError(f"CorrelationSettings has no field {sorted(unknown)[0]!r}")
        return CorrelationSettings(**{**self._values(), **changes})

    __replace__ = replace  # copy.replace (Python 3.13)

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"CorrelationSettings is immutable; use settings.replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("CorrelationSettings is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not CorrelationSettings:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(tuple(self._values().values()))  # a TypeError with a service_map, as for the dataclass

    def __repr__(self) -> str:
        return f"CorrelationSettings({', '.join(f'{k}={v!r}' for k, v in self._values().items())})"

    @property
    def header_bytes(self) -> bytes:
        """The header name as ASGI carries it: lower-case latin-1 bytes."""
        return self.header_name.lower().encode("latin-1")

    @property
    def fallback_bytes(self) -> tuple[bytes, ...]:
        return tuple(h.lower().encode("latin-1") for h in self.fallback_headers)

    @property
    def wsgi_key(self) -> str:
        """The ``environ`` key of the header (``HTTP_X_CORRELATION_ID``)."""
        return "HTTP_" + self.header_name.upper().replace("-", "_")

    @property
    def wsgi_fallback_keys(self) -> tuple[str, ...]:
        return tuple("HTTP_" + h.upper().replace("-", "_") for h in self.fallback_headers)

    def target_name(self, host: str, port: int | None = None) -> str:
        """The callee's service name for an outbound call: ``service_map`` by ``host:port``, then host."""
        if port is not None:
            mapped = self.service_map.get(f"{host}:{port}")
            if mapped:
                return mapped
        return self.service_map.get(host, host)


DEFAULT_SETTINGS = CorrelationSettings()


def resolve(settings: CorrelationSettings | None, overrides: Mapping[str, Any]) -> CorrelationSettings:
    """Settings from a ``settings=`` object and/or keyword overrides (``header_name="X-Request-ID"``)."""
    base = settings or DEFAULT_SETTINGS
    return base.replace(**overrides) if overrides else base

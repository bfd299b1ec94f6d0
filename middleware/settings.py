"""Middleware settings as one frozen dataclass (the asgi-correlation-id style), shared by every adapter.

The derived byte forms of the header names are computed once here so that the per-request path only compares
bytes it already has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corrtrace.ids import DEFAULT_POLICY, IdPolicy

DEFAULT_HEADER = "X-Correlation-ID"


@dataclass(frozen=True)
class CorrelationSettings:
    """How the correlation ID is read, echoed, logged and propagated.

    ``message_attribute`` names the carrier outside HTTP: the SQS/SNS message attribute, the EventBridge
    ``detail`` key, the DynamoDB item attribute and the Kinesis JSON field. ``skip_paths``: HTTP paths with no
    access line and no span. ``correlation_id_path`` (Lambda): a JMESPath to the ID in the event, tried first
    (Powertools' names in ``aws_lambda.correlation_paths``).
    """

    header_name: str = DEFAULT_HEADER
    fallback_headers: tuple[str, ...] = ("X-Request-ID",)
    policy: IdPolicy = DEFAULT_POLICY
    echo_header: bool = True
    expose_header: bool = True
    update_request_header: bool = False
    access_log: bool = True
    access_logger: str = "corrtrace.access"
    tracing: bool = False
    tracer_provider: Any = None
    message_attribute: str = "correlation_id"
    service_map: Mapping[str, str] = field(default_factory=dict)
    outbound_logger: str = "corrtrace.outbound"
    propagate_dynamodb: bool = False
    propagate_kinesis: bool = False
    skip_paths: tuple[str, ...] = ()
    correlation_id_path: str | None = None

    def __post_init__(self) -> None:
        if not self.header_name or not self.header_name.isascii() or any(c in self.header_name for c in ":\r\n "):
            raise ValueError(
                f"CorrelationSettings.header_name must be a plain ASCII header name, got {self.header_name!r}"
            )
        if isinstance(self.fallback_headers, str):
            raise TypeError("CorrelationSettings.fallback_headers must be a tuple of names, not one string")
        if isinstance(self.skip_paths, str):
            raise TypeError("CorrelationSettings.skip_paths must be a sequence of paths, not one string")
        object.__setattr__(self, "skip_paths", tuple(self.skip_paths))

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
    if not overrides:
        return base
    from dataclasses import replace

    return replace(base, **overrides)

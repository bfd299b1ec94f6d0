"""Correlation-ID middleware for ASGI, WSGI and AWS Lambda, outbound propagation and optional tracing.

Imports stay lazy: ``import corrtrace.middleware`` loads nothing heavy, and ``correlated_handler`` (the Lambda
wrapper) never pulls in an ASGI framework, boto3, httpx or OpenTelemetry on a cold start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .asgi import CorrelationIdMiddleware
    from .aws_lambda import correlated_handler, iter_records, process_batch
    from .settings import CorrelationSettings
    from .wsgi import WSGICorrelationIdMiddleware

_LAZY = {
    "CorrelationIdMiddleware": ".asgi",
    "WSGICorrelationIdMiddleware": ".wsgi",
    "correlated_handler": ".aws_lambda",
    "iter_records": ".aws_lambda",
    "process_batch": ".aws_lambda",
    "CorrelatedBatch": ".aws_lambda",
    "CorrelationSettings": ".settings",
    "DEFAULT_HEADER": ".settings",
}

__all__ = [*_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corrtrace.middleware' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

"""Correlation-ID middleware for ASGI, WSGI and AWS Lambda, outbound propagation and optional tracing.

Imports stay lazy: ``import corrtrace.middleware`` loads nothing heavy, and ``correlated_handler`` (the Lambda
wrapper) never pulls in an ASGI framework, boto3, httpx or OpenTelemetry on a cold start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .asgi import CorrelationIdMiddleware as CorrelationIdMiddleware
    from .aws_lambda import CorrelatedBatch as CorrelatedBatch
    from .aws_lambda import correlated_handler as correlated_handler
    from .aws_lambda import iter_records as iter_records
    from .aws_lambda import process_batch as process_batch
    from .settings import DEFAULT_HEADER as DEFAULT_HEADER
    from .settings import CorrelationSettings as CorrelationSettings
    from .wsgi import WSGICorrelationIdMiddleware as WSGICorrelationIdMiddleware

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

"""The demo's one seam to the other corrtrace parts: middleware, propagation, participants, manager client.

Everything the services need from the sibling packages is reached through the functions below, using each
package's public names, so a change in a sibling part shows up here and nowhere else in the demo.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from corrtrace.context import get_correlation_id

log = logging.getLogger("corrtrace.demo.wiring")

Callback = Callable[[str, dict[str, Any]], Any]


# --- inbound: ASGI / WSGI / Lambda -------------------------------------------------------------------
def settings(service_map: Mapping[str, str]) -> Any:
    from corrtrace.middleware import CorrelationSettings

    return CorrelationSettings(service_map=dict(service_map))


def asgi(app: Any, service_map: Mapping[str, str]) -> Any:
    """Wrap an ASGI app in corrtrace's middleware (binds the ID, echoes it, writes the access line)."""
    from corrtrace.middleware import CorrelationIdMiddleware

    return CorrelationIdMiddleware(app, settings(service_map))


def wsgi(app: Any, service_map: Mapping[str, str]) -> Any:
    from corrtrace.middleware import WSGICorrelationIdMiddleware

    return WSGICorrelationIdMiddleware(app, settings(service_map))


def lambda_handler(fn: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """corrtrace's Lambda wrapper (cold start, faas fields); the demo handler also binds per record."""
    from corrtrace.middleware import correlated_handler

    wrapped: Callable[[dict[str, Any], Any], Any] = correlated_handler(fn)
    return wrapped


# --- outbound propagation ----------------------------------------------------------------------------
def http_client(service_map: Mapping[str, str], timeout: float = 15.0) -> httpx.Client:
    """An httpx client whose requests carry the correlation ID and log one outbound line each."""
    from corrtrace.middleware.outbound import instrument_httpx

    client = httpx.Client(timeout=timeout)
    instrument_httpx(client, settings(service_map))
    return client


def boto3_client(name: str, moto_url: str, region: str, service_map: Mapping[str, str]) -> Any:
    """A boto3 client on moto whose SNS/SQS calls carry the correlation ID and log outbound lines."""
    import boto3
    from corrtrace.middleware.outbound import instrument_boto3

    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    ).client(name, endpoint_url=moto_url)
    instrument_boto3(client, settings(service_map))
    return client


# --- transaction manager -----------------------------------------------------------------------------
def participant_client(manager_url: str, secret: str, service: str) -> Any:
    from corrtrace.txmanager import ParticipantClient

    return ParticipantClient(manager_url, secret, service)


def manager_client(manager_url: str, secret: str, *, patient: bool = False) -> Any:
    """``patient``: retry for ~15 s (a manager restarting), for callers with nothing else to fall back on."""
    from corrtrace.txmanager import TxManagerClient

    return (
        TxManagerClient(manager_url, secret, retries=6, backoff=0.25)
        if patient
        else TxManagerClient(manager_url, secret)
    )


def failure_channel(settings: Any, service: str, client: Any) -> Any:
    """Where a service writes down a failure for the manager (``report(cid, reason, action)``)."""
    from corrtrace.txmanager.failures import FailureChannel

    return FailureChannel(settings, service, client=client)


def participant_router(secret: str, on_rollback: Callback, on_commit: Callback) -> Any:
    from corrtrace.txmanager import participant_router as router

    return router(secret, on_rollback, on_commit)


def participant_blueprint(secret: str, on_rollback: Callback, on_commit: Callback) -> Any:
    from corrtrace.txmanager import participant_blueprint as blueprint

    return blueprint(secret, on_rollback, on_commit)


def retrying(fn: Callable[[], Any], attempts: int = 3, delay: float = 0.05) -> Any:
    """Retry a call to a peer a few times on transport errors (the peer may still be starting)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except httpx.TransportError:
            if attempt == attempts:
                raise
            time.sleep(delay * attempt)
    return None


def current_id() -> str:
    cid = get_correlation_id()
    if cid is None:
        raise RuntimeError("no correlation ID bound: this code must run inside a request")
    return cid

"""Clients of the transaction manager: ``TxManagerClient`` (trigger, inspect) and ``ParticipantClient``
(a service registering itself). Every call is signed; errors say what to check.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import httpx

from corrtrace.backoff import Backoff
from corrtrace.errors import CorrtraceError
from corrtrace.ids import is_valid, safe_excerpt
from corrtrace.signing import sign_request


class TxManagerError(CorrtraceError):
    """A call to the transaction manager failed; ``status`` is the HTTP status (None: not reached)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


_HINTS = {
    401: "the manager refused the signature: check that the secret matches its CORRTRACE_TXMANAGER_SECRET "
    "and that both clocks agree within 5 minutes",
    404: "the manager does not know this transaction",
    409: "the transaction is already doing the other action (rollback vs commit)",
    413: "the request body is over the manager's max_body_bytes",
}


class HmacAuth(httpx.Auth):
    """Signs each request the manager (or a participant) verifies, with a fresh nonce per send, so a retried
    request is a new signed call rather than a replay. Any httpx client can use it::

        httpx.post(f"{manager}/transactions/{cid}/rollback", json={...}, auth=HmacAuth(secret))
    """

    requires_request_body = True

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("HmacAuth needs the shared secret (CORRTRACE_TXMANAGER_SECRET)")
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(sign_request(self._secret, request.method, request.url.path, request.content))
        yield request


class TxManagerClient:
    """Signed calls to the manager's HTTP API (thread-safe; reuse one per process)."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not secret:
            raise ValueError("TxManagerClient needs the shared secret (CORRTRACE_TXMANAGER_SECRET)")
        self.url = url.rstrip("/")
        self._retries = retries
        self._backoff = Backoff(initial=backoff, maximum=max(backoff, 5.0))
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport, auth=HmacAuth(secret))

    def __enter__(self) -> TxManagerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """One signed call; transport errors and 5xx are retried with backoff (every endpoint is idempotent)."""
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"Content-Type": "application/json"}
        backoff = self._backoff.fresh()
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                if attempt == self._retries:
                    raise TxManagerError(
                        f"cannot reach the transaction manager at {self.url} ({type(exc).__name__}); "
                        "check the URL and that `corrtrace txmanager serve` is running"
                    ) from exc
            else:
                if response.status_code < 500 or attempt == self._retries:
                    return self._result(method, path, response)
            attempt += 1
            backoff.wait(None)

    def _result(self, method: str, path: str, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = {"raw": safe_excerpt(response.text, 200)}
        if response.status_code >= 400:
            hint = _HINTS.get(response.status_code, "see the manager's log for this correlation id")
            raise TxManagerError(f"{method} {path} -> HTTP {response.status_code}: {hint}", response.status_code, data)
        return data if isinstance(data, dict) else {"result": data}

    @staticmethod
    def _path(correlation_id: str, tail: str = "") -> str:
        if not is_valid(correlation_id):
            raise ValueError(f"not a valid correlation id: {safe_excerpt(correlation_id)}")
        return f"/transactions/{correlation_id}{tail}"

    def rollback(
        self, correlation_id: str, *, reason: str | None = None, source: str | None = None, retry_failed: bool = False
    ) -> dict[str, Any]:
        """Ask for the rollback of every participant (idempotent: duplicates are counted, not repeated).

        ``retry_failed`` gives participants whose rollback failed for good a new attempt budget.
        """
        payload = {"reason": reason, "source": source, "retry_failed": retry_failed}
        return self.request("POST", self._path(correlation_id, "/rollback"), payload)

    def commit(
        self, correlation_id: str, *, reason: str | None = None, source: str | None = None, retry_failed: bool = False
    ) -> dict[str, Any]:
        """Ask every participant to commit its staged work."""
        payload = {"reason": reason, "source": source, "retry_failed": retry_failed}
        return self.request("POST", self._path(correlation_id, "/commit"), payload)

    def status(self, correlation_id: str) -> dict[str, Any]:
        """The transaction and each participant's state."""
        return self.request("GET", self._path(correlation_id))

    def register(
        self, correlation_id: str, service: str, rollback_url: str, commit_url: str | None = None
    ) -> dict[str, Any]:
        """Register ``service`` as a participant of the transaction."""
        payload = {"service": service, "rollback_url": rollback_url, "commit_url": commit_url}
        return self.request("POST", self._path(correlation_id, "/participants"), payload)


class ParticipantClient:
    """What a service calls when it does work for a correlation ID: register its rollback and commit URLs."""

    def __init__(self, manager_url: str, secret: str, service: str, **kwargs: Any) -> None:
        self.service = service
        self._client = TxManagerClient(manager_url, secret, **kwargs)

    def register(self, correlation_id: str, rollback_url: str, commit_url: str | None = None) -> dict[str, Any]:
        return self._client.register(correlation_id, self.service, rollback_url, commit_url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ParticipantClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

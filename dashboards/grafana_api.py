"""Upload dashboards through Grafana's HTTP API (``POST /api/dashboards/db``), creating the folder first.

Authentication is a service-account token sent as ``Authorization: Bearer``; the token is never logged or
echoed. 401, 403 and 412 become one clear sentence saying what to do; 5xx and connection failures are
retried with exponential backoff, since a restarting Grafana answers 502/503 for a few seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from corrtrace.backoff import Backoff
from corrtrace.errors import CorrtraceError

RETRYABLE = frozenset({500, 502, 503, 504})


class GrafanaError(CorrtraceError, RuntimeError):
    """A failed Grafana call; ``str()`` says what happened and what to do, ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImportResult:
    uid: str
    url: str
    version: int
    status: str


def folder_uid_for(title: str) -> str:
    """A stable folder uid for a folder title (1-40 chars of ``[a-z0-9-]``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return (slug or "corrtrace")[:40]


def _detail(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:200]}
    return body if isinstance(body, dict) else {"message": str(body)[:200]}


class GrafanaClient:
    """A small client for the dashboard and folder endpoints; pass ``transport`` to route requests in tests."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        org_id: int | None = None,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token:
            raise GrafanaError("no Grafana token: pass --token or set GRAFANA_TOKEN (a service-account token)")
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if org_id is not None:
            headers["X-Grafana-Org-Id"] = str(org_id)
        self.base = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout, transport=transport)
        self.retried = False  # whether the last call needed more than one attempt

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GrafanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport with retries
    def _request(self, method: str, path: str, *, json: Any = None, what: str) -> httpx.Response:
        attempt = 0
        self.retried = False
        backoff = Backoff(initial=self.backoff, maximum=max(self.backoff, 30.0))
        while True:
            attempt += 1
            self.retried = attempt > 1
            try:
                response = self.http.request(method, path, json=json)
            except httpx.TransportError as exc:
                if attempt > self.retries:
                    raise GrafanaError(
                        f"{what}: cannot reach Grafana at {self.base} after {attempt} attempts ({type(exc).__name__});"
                        " check --url and that Grafana is running"
                    ) from None
            else:
                if response.status_code not in RETRYABLE:
                    return response
                if attempt > self.retries:
                    message = _detail(response).get("message", "")
                    raise GrafanaError(
                        f"{what}: Grafana answered {response.status_code} {message!s:.120} {attempt} times;"
                        " it is failing server-side, look at its log and retry later",
                        response.status_code,
                    )
            self.sleep(backoff.next_delay())

    def _fail(
        self,
        response: httpx.Response,
        what: str,
        folder_uid: str | None = None,
        permission: str = "dashboards:create and dashboards:write",
    ) -> GrafanaError:
        status = response.status_code
        detail = _detail(response)
        message = str(detail.get("message", ""))[:200]
        if status == 401:
            text = (
                f"{what}: Grafana rejected the token (401 Unauthorized): use a valid service-account token"
                " (Administration > Service accounts > Add token), not expired or revoked"
            )
        elif status == 403:
            scope = f" on folder '{folder_uid}'" if folder_uid else ""
            text = (
                f"{what}: the token's service account may not do this (403 Forbidden): give it the Editor role"
                f" or {permission}{scope}"
            )
        elif status == 412:
            reason = str(detail.get("status", ""))
            advice = {
                "name-exists": "a dashboard with this uid or title already exists in the folder;"
                " rerun with --overwrite to replace it",
                "version-mismatch": "Grafana holds another version of this dashboard (changed there, or imported"
                " before); rerun with --overwrite to replace it",
                "plugin-dashboard": "the dashboard belongs to a plugin; rerun with --overwrite to replace it",
            }.get(reason, "Grafana refused the change")
            text = f"{what}: 412 Precondition Failed ({reason or message}): {advice}"
        else:
            text = f"{what}: Grafana answered {status}: {message or response.reason_phrase}"
        return GrafanaError(text, status)

    def _landed(self, dashboard: dict[str, Any], what: str) -> ImportResult | None:
        """After a 5xx and a retry, a 412 may be our own first attempt that landed (a proxy lost the answer):
        the stored dashboard is ours when it equals what we sent, apart from ``id`` and ``version``."""
        uid = dashboard.get("uid")
        if not uid:
            return None
        found = self._request("GET", f"/api/dashboards/uid/{uid}", what=what)
        if found.status_code != 200:
            return None
        body = found.json()
        stored, meta = body.get("dashboard") or {}, body.get("meta") or {}

        def comparable(board: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in board.items() if k not in ("id", "version")}

        if comparable(stored) != comparable(dashboard):
            return None
        return ImportResult(
            uid=str(uid),
            url=f"{self.base}{meta.get('url', '')}",
            version=int(stored.get("version", meta.get("version", 0))),
            status="success",
        )

    # ------------------------------------------------------------------ folders
    def ensure_folder(self, title: str, uid: str | None = None) -> str:
        """The uid of the folder titled ``title``, creating it when missing."""
        uid = uid or folder_uid_for(title)
        what = f"folder '{title}'"
        found = self._request("GET", f"/api/folders/{uid}", what=what)
        if found.status_code == 200:
            return str(found.json().get("uid", uid))
        if found.status_code != 404:
            raise self._fail(found, what, permission="folders:read")
        listing = self._request("GET", "/api/folders", what=what)
        if listing.status_code == 200 and isinstance(listing.json(), list):
            for folder in listing.json():
                if isinstance(folder, dict) and folder.get("title") == title and folder.get("uid"):
                    return str(folder["uid"])
        created = self._request("POST", "/api/folders", json={"uid": uid, "title": title}, what=what)
        if created.status_code in (200, 201):
            return str(created.json().get("uid", uid))
        raise self._fail(created, what, permission="folders:create")

    # ------------------------------------------------------------------ dashboards
    def import_dashboard(
        self,
        dashboard: dict[str, Any],
        *,
        folder_uid: str | None = None,
        overwrite: bool = False,
        message: str = "corrtrace dashboards import",
    ) -> ImportResult:
        """Create or update one dashboard; ``id`` is sent as null so the ``uid`` decides (portable)."""
        payload: dict[str, Any] = {
            "dashboard": {**dashboard, "id": None},
            "overwrite": overwrite,
            "message": message,
        }
        if folder_uid:
            payload["folderUid"] = folder_uid
        what = f"dashboard '{dashboard.get('title', dashboard.get('uid', '?'))}'"
        response = self._request("POST", "/api/dashboards/db", json=payload, what=what)
        if (
            response.status_code == 412
            and self.retried
            and _detail(response).get("status") in ("name-exists", "version-mismatch")
        ):
            landed = self._landed(dashboard, what)
            if landed is not None:
                return landed
        if response.status_code != 200:
            raise self._fail(response, what, folder_uid)
        body = response.json()
        return ImportResult(
            uid=str(body.get("uid", "")),
            url=f"{self.base}{body.get('url', '')}",
            version=int(body.get("version", 0)),
            status=str(body.get("status", "")),
        )

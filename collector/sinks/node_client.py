"""One Elasticsearch node over the standard library's ``http.client``: the requests the sink makes (bulk, index
template and ILM policy, search, list and delete indices) without elasticsearch-py, whose import alone costs about 0.6 s
of CPU per ``corrtrace collect`` run (see collector/README.md, "A cluster of nodes").

``corrtrace collect`` and ``corrtrace search`` use it for a single ``es_url`` node; a cluster's nodes go through
elasticsearch-py's node pool (collector/sinks/nodes.py), which fails over between them.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import orjson

from corrtrace import __version__
from corrtrace.errors import PermanentError, TransientError

BULK_FILTER = "errors,items.*.status,items.*.error.type,items.*.error.reason"
# what a kept-alive connection raises when the node (or a proxy) closed it while it sat idle
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _auth_header(api_key: str | None, username: str | None, password: str | None) -> str | None:
    if api_key:
        return f"ApiKey {api_key}"
    if username:
        return "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
    return None


class NodeClient:
    """The sink's ``BulkClient`` for one node: kept-alive connections (one per concurrent request, reused),
    API key or basic auth, TLS verified by default. Connection failures and 429/5xx raise ``TransientError``
    (the sink retries), other refusals ``PermanentError``."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) node URL: {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self.url = f"{parts.scheme}://{self._host}:{self._port}"  # never the credentials
        self._path = parts.path.rstrip("/")
        if parts.username and not (api_key or username):
            username, password = unquote(parts.username), unquote(parts.password or "")
        self._headers = {"user-agent": f"corrtrace/{__version__}", "accept": "application/json"}
        auth = _auth_header(api_key, username, password)
        if auth:
            self._headers["authorization"] = auth
        self._timeout = timeout
        self._tls: ssl.SSLContext | None = None
        if self._https:
            self._tls = ssl.create_default_context(cafile=ca_certs)
            if not verify_certs:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NodeClient({self.url!r})"

    # -- the BulkClient interface ------------------------------------------------------------------------------
    def bulk(self, body: bytes) -> dict[str, Any]:
        return dict(self._request("POST", "/_bulk", body, "application/x-ndjson", {"filter_path": BULK_FILTER}))

    def put_template(self, name: str, body: dict[str, Any]) -> None:
        self._request("PUT", f"/_index_template/{quote(name, safe='')}", orjson.dumps(body))

    def index_templates(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/_index_template").get("index_templates", []))

    def put_lifecycle(self, name: str, prefix: str, days: int) -> None:
        """Create or replace the ILM policy ``name`` (the template names it for new indices)."""
        from corrtrace.collector.retention import ilm_policy

        self._request("PUT", f"/_ilm/policy/{quote(name, safe='')}", orjson.dumps({"policy": ilm_policy(days)}))

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
        return dict(self._request("POST", f"/{quote(index, safe=',*')}/_search", orjson.dumps(body), params=params))

    def index_names(self, pattern: str) -> list[str]:
        params = {"format": "json", "h": "index", "expand_wildcards": "open,closed"}
        rows = self._request("GET", f"/_cat/indices/{quote(pattern, safe=',*')}", params=params)
        return [row["index"] for row in rows]

    def delete_indices(self, names: list[str]) -> None:
        self._request("DELETE", "/" + quote(",".join(names), safe=","))

    def refresh(self, pattern: str) -> None:
        params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
        self._request("POST", f"/{quote(pattern, safe=',*')}/_refresh", params=params)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- HTTP ----------------------------------------------------------------------------------------------------
    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle kept-alive connection (True) or a new one (False)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        if self._tls is not None:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._tls), False
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout), False

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        target = self._path + path + ("?" + urlencode(params, safe=",*") if params else "")
        headers = self._headers if body is None else {**self._headers, "content-type": content_type}
        while True:
            conn, reused = self._connection()
            try:
                conn.request(method, target, body, headers)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE as exc:
                conn.close()
                if reused:
                    continue  # closed while idle: send again on a new connection (a resend is safe: the ids)
                raise TransientError(f"{self.url}: {type(exc).__name__}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise TransientError(f"{self.url}: {type(exc).__name__}: {exc}") from None
            if resp.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            break
        if resp.status >= 300:
            message = f"HTTP {resp.status}: {_reason(data)}"
            if resp.status == 429 or resp.status >= 500:
                raise TransientError(message)
            raise PermanentError(message)
        return orjson.loads(data) if data else {}


def _reason(data: bytes) -> str:
    """The node's own ``error.type: error.reason`` (else the start of its reply), on one line."""
    try:
        error = orjson.loads(data).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"[:500]
    if isinstance(error, str):
        return error[:500]
    return data[:200].decode("utf-8", "replace").replace("\n", " ") or "(no body)"

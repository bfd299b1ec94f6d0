"""Elasticsearch (and OpenSearch) sink: bulk ``create`` with deterministic ids, every item classified.

409 = already stored (counted as duplicate); 429 and 5xx items are retried alone with backoff and jitter;
any other rejection goes to the dead-letter file with its reason. A bulk is never "OK because some items
succeeded" (Fluent Bit #6341), and item 429s are always retried (elasticsearch-py #864).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from corrtrace.collector.record import Record, day_of
from corrtrace.collector.retry import Backoff, DeadLetters
from corrtrace.collector.sinks.base import CallLimits, Found, SearchQuery, SinkStats

from corrtrace.errors import PermanentError, TransientError
from corrtrace.shapes import whole_number

log = logging.getLogger("corrtrace.collector.elasticsearch")
DEFAULT_PREFIX = "logs-corrtrace"
MAX_RESULT_WINDOW = 10_000  # the engines' default index.max_result_window: the most one search returns
_KEYWORDS = (
    "correlation_id",
    "trace.id",
    "span.id",
    "transaction.id",
    "service.name",
    "service.version",
    "service.environment",
    "service.target.name",
    "log.level",
    "log.logger",
    "event.outcome",
    "event.dataset",
    "event.action",
    "host.name",
    "http.request.id",
    "http.request.method",
    "url.path",
    "client.address",
    "faas.name",
    "faas.execution",
    "error.type",
)
# Elasticsearch-only index settings (8.13+) that OpenSearch rejects as "unknown setting" (HTTP 400)
_ES_ONLY_SETTINGS = frozenset({"index.mapping.total_fields.ignore_dynamic_beyond_limit", "index.lifecycle.name"})


def _nested(dotted: str, leaf: dict[str, Any], into: dict[str, Any]) -> None:
    *parents, name = dotted.split(".")
    node = into
    for part in parents:
        node = node.setdefault(part, {"properties": {}})["properties"]
    node[name] = leaf


def template_body(
    prefix: str = DEFAULT_PREFIX,
    *,
    field_limit: int = 1000,
    shards: int = 1,
    replicas: int = 0,
    lifecycle_policy: str | None = None,
) -> dict[str, Any]:
    """The index template for ``<prefix>-*``: explicit types for the contract's fields, dynamic for the rest.
    ``lifecycle_policy`` names the ILM policy new indices follow (OpenSearch attaches ISM policies itself)."""
    props: dict[str, Any] = {
        "@timestamp": {"type": "date"},
        "message": {"type": "text"},
        "ecs": {"properties": {"version": {"type": "keyword"}}},
    }
    for name in _KEYWORDS:
        _nested(name, {"type": "keyword", "ignore_above": 1024}, props)
    _nested("event.duration", {"type": "long"}, props)
    _nested("event.sequence", {"type": "long"}, props)
    _nested("http.response.status_code", {"type": "long"}, props)
    _nested("process.pid", {"type": "long"}, props)
    _nested("faas.coldstart", {"type": "boolean"}, props)
    _nested("error.message", {"type": "text"}, props)
    _nested("error.stack_trace", {"type": "text", "index": False}, props)
    _nested("log.original", {"type": "keyword", "index": False, "doc_values": False}, props)
    _nested("event.original", {"type": "keyword", "index": False, "doc_values": False}, props)
    return {
        "index_patterns": [f"{prefix}-*"],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                "index.mapping.total_fields.limit": field_limit,
                "index.mapping.total_fields.ignore_dynamic_beyond_limit": True,
                "refresh_interval": "1s",
                **({"index.lifecycle.name": lifecycle_policy} if lifecycle_policy else {}),
            },
            "mappings": {
                "dynamic": True,
                "dynamic_templates": [
                    {
                        "labels": {
                            "path_match": "labels.*",
                            "match_mapping_type": "string",
                            "mapping": {"type": "keyword", "ignore_above": 1024},
                        }
                    },
                    {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}},
                ],
                "properties": props,
            },
        },
        "_meta": {"managed_by": "corrtrace"},
    }


@runtime_checkable
class BulkClient(Protocol):
    """The small interface both the Elasticsearch and the OpenSearch client are adapted to (and that
    collector/sinks/node_client.py's ``NodeClient`` serves itself)."""

    def bulk(self, body: bytes) -> dict[str, Any]: ...

    def put_template(self, name: str, body: dict[str, Any]) -> None: ...

    def index_templates(self) -> list[dict[str, Any]]: ...

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def index_names(self, pattern: str) -> list[str]: ...

    def delete_indices(self, names: list[str]) -> None: ...

    def refresh(self, pattern: str) -> None: ...

    def put_lifecycle(self, name: str, prefix: str, days: int) -> None: ...


class ElasticsearchClient:
    """Adapter for ``elasticsearch.Elasticsearch`` (8.x). The sink does the retrying; the client only moves a
    request that could not reach one node on to the next (none with a single node)."""

    def __init__(self, client: Any) -> None:
        if hasattr(client, "options"):
            others = len(client.transport.node_pool.all()) - 1
            client = client.options(max_retries=others, retry_on_status=(), retry_on_timeout=False)
        self.client = client

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        from elasticsearch import ApiError, TransportError

        try:
            return fn(**kwargs)
        except ApiError as exc:
            if exc.meta.status == 429 or exc.meta.status >= 500:
                raise TransientError(f"HTTP {exc.meta.status}: {exc.message}") from exc
            raise PermanentError(f"HTTP {exc.meta.status}: {exc}") from exc
        except TransportError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc

    def bulk(self, body: bytes) -> dict[str, Any]:
        resp = self._call(
            self.client.bulk,
            operations=body,
            filter_path="errors,items.*.status,items.*.error.type,items.*.error.reason",
        )
        return dict(resp.body)

    def put_template(self, name: str, body: dict[str, Any]) -> None:
        self._call(self.client.indices.put_index_template, name=name, **body)

    def index_templates(self) -> list[dict[str, Any]]:
        return list(self._call(self.client.indices.get_index_template).body.get("index_templates", []))

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self._call(self.client.search, index=index, ignore_unavailable=True, allow_no_indices=True, **body)
        return dict(resp.body)

    def index_names(self, pattern: str) -> list[str]:
        rows = self._call(
            self.client.cat.indices, index=pattern, format="json", h="index", expand_wildcards="open,closed"
        )
        return [row["index"] for row in rows.body]

    def delete_indices(self, names: list[str]) -> None:
        self._call(self.client.indices.delete, index=",".join(names))

    def refresh(self, pattern: str) -> None:
        self._call(self.client.indices.refresh, index=pattern, ignore_unavailable=True, allow_no_indices=True)

    def put_lifecycle(self, name: str, prefix: str, days: int) -> None:
        """Create or replace the ILM policy ``name`` (the template names it for new indices)."""
        from corrtrace.collector.retention import ilm_policy

        self._call(self.client.ilm.put_lifecycle, name=name, policy=ilm_policy(days))


class OpenSearchClient:
    """Adapter for ``opensearchpy.OpenSearch`` behind the same interface."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError as OsTransportError

        try:
            return fn(*args, **kwargs)
        except OsConnectionError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        except OsTransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            if status == 429 or status >= 500 or status == 0:
                raise TransientError(f"HTTP {status}: {exc}") from exc
            raise PermanentError(f"HTTP {status}: {exc}") from exc

    def bulk(self, body: bytes) -> dict[str, Any]:
        return dict(
            self._call(
                self.client.bulk,
                body=body,
                params={"filter_path": "errors,items.*.status,items.*.error.type,items.*.error.reason"},
            )
        )

    def put_template(self, name: str, body: dict[str, Any]) -> None:
        settings = {k: v for k, v in body["template"]["settings"].items() if k not in _ES_ONLY_SETTINGS}
        body = {**body, "template": {**body["template"], "settings": settings}}
        self._call(self.client.indices.put_index_template, name=name, body=body)

    def index_templates(self) -> list[dict[str, Any]]:
        return list(self._call(self.client.indices.get_index_template).get("index_templates", []))

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self._call(
                self.client.search,
                index=index,
                body=body,
                params={"ignore_unavailable": "true", "allow_no_indices": "true"},
            )
        )

    def index_names(self, pattern: str) -> list[str]:
        rows = self._call(
            self.client.cat.indices,
            index=pattern,
            params={"format": "json", "h": "index", "expand_wildcards": "open,closed"},
        )
        return [row["index"] for row in rows]

    def delete_indices(self, names: list[str]) -> None:
        self._call(self.client.indices.delete, index=",".join(names))

    def refresh(self, pattern: str) -> None:
        params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
        self._call(self.client.indices.refresh, index=pattern, params=params)

    def put_lifecycle(self, name: str, prefix: str, days: int) -> None:
        """Create the ISM policy ``name``, or replace it (ISM asks for the stored version to replace one)."""
        from corrtrace.collector.retention import ism_policy

        ism = self.client.plugins.index_management
        body = {"policy": ism_policy(prefix, days)}
        try:
            self._call(ism.put_policy, name, body=body)
        except PermanentError as exc:
            if not str(exc).startswith("HTTP 409"):
                raise
            stored = self._call(ism.get_policy, name)
            version = {"if_seq_no": stored["_seq_no"], "if_primary_term": stored["_primary_term"]}
            self._call(ism.put_policy, name, body=body, params=version)


def _adapt(client: Any) -> BulkClient:
    if isinstance(client, BulkClient):
        return client
    if type(client).__module__.startswith("opensearchpy"):
        return OpenSearchClient(client)
    return ElasticsearchClient(client)


def ensure_index_template(es: Any, prefix: str = DEFAULT_PREFIX, **options: Any) -> dict[str, Any]:
    """Install (or update) the ``<prefix>-*`` index template; returns the body that was sent.

    A refusal no retry can fix (another template matching the same indices at the same priority, no privilege)
    is a ``ConfigError`` whose one line names both templates and what to change (collector/README.md,
    "Config")."""
    body = template_body(prefix, **options)
    client = _adapt(es)
    try:
        client.put_template(prefix, body)
    except PermanentError as exc:
        raise _template_refused(client, prefix, body, exc) from None
    return body


def _template_refused(client: BulkClient, name: str, body: dict[str, Any], exc: PermanentError) -> Exception:
    """The one-line error for a refused template: the overlapping template when the server has one."""
    from corrtrace.config import ConfigError

    server = "opensearch" if isinstance(client, OpenSearchClient) else "elasticsearch"
    (ours,) = body["index_patterns"]
    what = f"{server} refused index template {name!r} (indices {ours})"
    try:
        others = client.index_templates()
    except (TransientError, PermanentError):
        others = []
    for other in others:
        spec = other.get("index_template") or {}
        patterns = [p for p in spec.get("index_patterns") or [] if isinstance(p, str)]
        if other.get("name") == name or spec.get("priority", 0) != body["priority"]:
            continue
        if any(_patterns_overlap(ours, p) for p in patterns):
            theirs = ", ".join(patterns)
            return ConfigError(
                f"collector.index_prefix: {what}: existing template {other.get('name')!r} ({theirs}) matches "
                f"the same index names at the same priority {body['priority']}; choose an index_prefix whose "
                f"indices ({ours}) cannot match {theirs}, or delete template {other.get('name')!r} if nothing "
                "ships to it"
            )
    return ConfigError(f"collector.index_prefix: {what}: {_reason(exc)}; fix the cause (or the credentials)")


def _reason(exc: PermanentError) -> str:
    """``HTTP <status>: <the server's error.reason>`` for a refusal, else the client's whole message."""
    cause = exc.__cause__
    reply = getattr(cause, "body", None) or getattr(cause, "info", None)  # elasticsearch-py / opensearch-py
    error = reply.get("error") if isinstance(reply, dict) else None
    if isinstance(error, dict) and error.get("reason"):
        return f"{str(exc).split(':', 1)[0]}: {error['reason']}"
    return str(exc)


def _patterns_overlap(a: str, b: str) -> bool:
    """Whether some index name matches both wildcard patterns (``*`` = any characters, as the server reads
    them): walk both at once, a ``*`` on either side may take nothing or one more character of the other."""
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        star_a, star_b = a[i : i + 1] == "*", b[j : j + 1] == "*"
        if star_a:
            todo.append((i + 1, j))  # a's star takes nothing more
            if j < len(b):
                todo.append((i, j + 1))  # ... or b's next character (or b's star)
        if star_b:
            todo.append((i, j + 1))
            if i < len(a):
                todo.append((i + 1, j))
        if i < len(a) and j < len(b) and a[i] == b[j] and not (star_a or star_b):
            todo.append((i + 1, j + 1))
    return False


def connect(
    url: str | Sequence[str],
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    timeout: float = 30.0,
    flavor: str = "elasticsearch",
    aws_sigv4: tuple[str | None, str] | None = None,
) -> Any:
    """A client for ``url`` (one node URL, or a list of a cluster's nodes): API key or basic auth, TLS verified
    by default (``ca_certs`` for a private CA). With several nodes a request that cannot reach one is sent to
    the next at once, and each lost node is logged once (collector/sinks/nodes.py). ``aws_sigv4`` = (region,
    service): sign every request with SigV4 from the standard AWS credential chain (OpenSearch only)."""
    from corrtrace.collector.sinks import nodes

    urls = [url] if isinstance(url, str) else list(url)
    failover: dict[str, Any] = {}
    auth: dict[str, Any] = {}
    if flavor == "opensearch":
        from opensearchpy import OpenSearch

        if len(urls) > 1:
            nodes.quiet_client_logs()
            failover = {"connection_pool_class": nodes.reporting_connection_pool(), "retry_on_status": ()}
        if aws_sigv4 is not None:
            auth["http_auth"] = sigv4_auth(*aws_sigv4)
        elif username:
            auth["http_auth"] = (username, password or "")
        if api_key:
            auth["headers"] = {"Authorization": f"ApiKey {api_key}"}
        return OpenSearch(
            urls,
            ca_certs=ca_certs,
            verify_certs=verify_certs,
            timeout=timeout,
            max_retries=len(urls) - 1,
            **failover,
            **auth,
        )
    from elasticsearch import Elasticsearch

    if len(urls) > 1:
        nodes.quiet_client_logs()
        failover = {"node_pool_class": nodes.ReportingNodePool, "retry_on_status": ()}
    if api_key:
        auth["api_key"] = api_key
    elif username:
        auth["basic_auth"] = (username, password or "")
    tls: dict[str, Any] = (
        {"ca_certs": ca_certs, "verify_certs": verify_certs} if any(u.startswith("https") for u in urls) else {}
    )
    return Elasticsearch(
        urls,
        request_timeout=timeout,
        max_retries=len(urls) - 1,
        retry_on_timeout=False,
        serializers=_serializers(),
        **failover,
        **auth,
        **tls,
    )


def _serializers() -> dict[str, Any]:
    """The sink's ``_bulk`` body is NDJSON bytes already: send it as it is (the client's own NDJSON serializer
    copies it twice), and read the replies with orjson."""
    from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

    class AsBuilt(NdjsonSerializer):
        def dumps(self, data: Any) -> bytes:
            if data.__class__ is bytes and data.endswith(b"\n"):
                return data  # type: ignore[no-any-return]
            return super().dumps(data)

    return {"application/json": OrjsonSerializer(), "application/x-ndjson": AsBuilt()}


def sigv4_auth(region: str | None, service: str = "es") -> Any:
    """opensearch-py's SigV4 signer over botocore's credential chain (env, profile, container or instance role);
    refreshable credentials are re-read for every request, so rotated session keys keep working."""
    import botocore.session
    from opensearchpy import Urllib3AWSV4SignerAuth

    from corrtrace.config import ConfigError

    session = botocore.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise ConfigError(
            "collector.es_auth: aws_sigv4 found no AWS credentials (environment, profile, container or instance role)"
        )
    region = region or session.get_config_variable("region")
    if not region:
        raise ConfigError("collector.es_aws_region: aws_sigv4 needs a region (or AWS_REGION)")
    return Urllib3AWSV4SignerAuth(credentials, region, service)


class ElasticsearchSink:
    """Ship records to ``<prefix>-<yyyy.mm.dd>`` with ``create`` and ``_id`` = source identity + offset.

    Batches may be delivered from several threads at once (``max_in_flight`` bulk requests): the ids make the
    order of arrival irrelevant, and the node indexes concurrent bulks on its other cores.
    """

    name = "elasticsearch"
    idempotent = True
    call_limits: CallLimits | None = None  # bulk bodies are cut by ``max_body_bytes`` here, whatever the batch
    max_in_flight = 4

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        dead_letters: DeadLetters | None = None,
        backoff: Backoff | None = None,
        max_body_bytes: int = 20 << 20,
        install_template: bool = True,
        max_attempts: int | None = None,
        fail_on_refusal: bool = False,
        replicas: int = 0,
        native_retention_days: int = 0,
    ) -> None:
        self.client = _adapt(client)
        self.replicas = replicas
        # ``es_lifecycle: native``: the engine's ILM/ISM deletes indices this many days old; 0 = corrtrace prunes
        self.native_retention_days = native_retention_days
        self.fail_on_refusal = fail_on_refusal
        self.prefix = prefix
        self.dead_letters = dead_letters or DeadLetters(None)
        self.backoff_proto = backoff or Backoff()
        self.max_body_bytes = max_body_bytes
        self.max_attempts = max_attempts
        self.stats = SinkStats()
        self._template_pending = install_template
        self._index_prefix_bytes = prefix.encode()
        self._heads: dict[int, bytes] = {}
        self._stats_lock = threading.Lock()  # deliveries run in parallel; counts must not lose an update

    def _backoff(self) -> Backoff:
        return Backoff(self.backoff_proto.initial, self.backoff_proto.maximum, self.backoff_proto.factor)

    def _ensure_template(self, stop: threading.Event | None) -> None:
        backoff = self._backoff()
        while self._template_pending:
            try:
                policy = self._install_lifecycle()
                ensure_index_template(self.client, self.prefix, replicas=self.replicas, lifecycle_policy=policy)
                self._template_pending = False
            except TransientError as exc:
                self._note_failure(exc, backoff)
                backoff.wait(stop)

    def _install_lifecycle(self) -> str | None:
        """Install the native retention policy when configured; its name, for the template (ILM needs it)."""
        if not self.native_retention_days:
            return None
        name = f"{self.prefix}-retention"
        try:
            self.client.put_lifecycle(name, self.prefix, self.native_retention_days)
        except PermanentError as exc:
            if "no handler found" not in str(exc):
                raise
            from corrtrace.config import ConfigError

            engine = "ISM plugin" if isinstance(self.client, OpenSearchClient) else "ILM (X-Pack)"
            raise ConfigError(
                f"collector.es_lifecycle: native, but the node has no {engine}; set es_lifecycle: prune "
                "(corrtrace deletes old indices itself)"
            ) from None
        return name if isinstance(self.client, ElasticsearchClient) else None

    def _note_failure(self, exc: Exception, backoff: Backoff) -> None:
        with self._stats_lock:
            self.stats.failures += 1
        if backoff.attempt in (0, 3) or backoff.attempt % 10 == 0:
            log.warning("elasticsearch unavailable, retrying with backoff: %s", exc)

    def build_body(self, records: Sequence[Record]) -> bytes:
        """The NDJSON ``_bulk`` body: action line + the stored raw line, for each record."""
        heads = self._heads
        parts: list[bytes] = []
        add = parts.append
        for r in records:
            day = r.ts // 86_400_000
            head = heads.get(day)
            if head is None:
                head = heads[day] = b'{"create":{"_index":"%s-%s","_id":"' % (
                    self._index_prefix_bytes,
                    day_of(r.ts).encode(),
                )
            add(head)
            add(r.doc_id.encode())
            add(b'"}}\n')
            add(r.raw)
            add(b"\n")
        return b"".join(parts)

    def deliver(self, records: Sequence[Record], stop: threading.Event | None = None) -> None:
        self._ensure_template(stop)
        pending = list(records)
        backoff = self._backoff()
        attempts = 0
        while pending:
            chunk, rest = self._chunk(pending)
            body = self.build_body(chunk)
            with self._stats_lock:
                self.stats.requests += 1
            attempts += 1
            try:
                resp = self.client.bulk(body)
            except TransientError as exc:
                self._note_failure(exc, backoff)
                self._give_up_check(attempts, exc)
                backoff.wait(stop)
                continue
            except PermanentError as exc:
                # auth or a malformed request: the data is fine, the setup is not; keep it, retry slowly, shout
                with self._stats_lock:
                    self.stats.failures += 1
                log.error("elasticsearch refused the bulk request (fix the configuration): %s", exc)
                if self.fail_on_refusal:
                    raise PermanentError(
                        f"elasticsearch refused the bulk request: {exc}; nothing was checkpointed, "
                        "fix the credentials or permissions and run again"
                    ) from exc
                self._give_up_check(attempts, exc)
                backoff.wait(stop)
                continue
            with self._stats_lock:
                retry = self._classify(chunk, resp)
                self.stats.retried += len(retry)
            if retry:
                self._give_up_check(attempts, TransientError(f"{len(retry)} items still rejected"))
                backoff.wait(stop)
            else:
                backoff.reset()
                attempts = 0
            pending = retry + rest

    def _give_up_check(self, attempts: int, exc: Exception) -> None:
        if self.max_attempts is not None and attempts >= self.max_attempts:
            raise exc

    def _chunk(self, pending: list[Record]) -> tuple[list[Record], list[Record]]:
        size = 0
        for i, r in enumerate(pending):
            size += len(r.raw) + 100
            if size > self.max_body_bytes and i:
                return pending[:i], pending[i:]
        return pending, []

    def _classify(self, chunk: list[Record], resp: dict[str, Any]) -> list[Record]:
        if not resp.get("errors"):
            self.stats.delivered += len(chunk)
            return []
        retry: list[Record] = []
        items = resp.get("items", [])
        if len(items) != len(chunk):  # cannot map replies to requests: retry all, ids make it safe
            return list(chunk)
        for record, item in zip(chunk, items, strict=True):
            result = next(iter(item.values()))
            status = int(result.get("status", 0))
            if status < 300:
                self.stats.delivered += 1
            elif status == 409:
                self.stats.duplicates += 1
            elif status == 429 or status >= 500:
                retry.append(record)
            else:
                error = result.get("error") or {}
                reason = f"{error.get('type', 'rejected')}: {error.get('reason', '')}"
                self.dead_letters.add(self.name, reason, record.raw, record.doc_id, status=status)
                self.stats.dead_lettered += 1
        return retry

    # -- search ------------------------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> Found:
        filters: list[dict[str, Any]] = [{"term": {"correlation_id": query.correlation_id}}]
        if query.since is not None or query.until is not None:
            rng: dict[str, Any] = {"format": "epoch_millis"}
            if query.since is not None:
                rng["gte"] = query.since
            if query.until is not None:
                rng["lte"] = query.until
            filters.append({"range": {"@timestamp": rng}})
        if query.service is not None:
            filters.append({"term": {"service.name": query.service}})
        if query.level is not None:  # in the query, so the limit counts only this level's lines
            filters.append({"term": {"log.level": {"value": query.level, "case_insensitive": True}}})
        body = {
            "query": {"bool": {"filter": filters}},
            "size": min(query.limit, MAX_RESULT_WINDOW),
            "sort": [{"@timestamp": "asc"}],
            "seq_no_primary_term": False,
            "track_total_hits": True,  # the count of every match: more than were returned means a cut flow
        }
        resp = self.client.search(f"{self.prefix}-*", body)
        hits = resp.get("hits", {}).get("hits", [])
        total = resp.get("hits", {}).get("total", {})
        matched = total.get("value", 0) if isinstance(total, dict) else total
        out = []
        for hit in hits:
            doc = hit["_source"]
            from corrtrace.timestamps import parse_timestamp_ms

            ts = parse_timestamp_ms(doc.get("@timestamp")) or 0
            if query.accepts(doc, ts):
                out.append((ts, _arrival_key(hit["_id"]), doc))
        out.sort(key=lambda t: (t[0], t[1]))
        return Found.first([doc for _, _, doc in out], query.limit, more=matched > len(hits))

    # -- retention --------------------------------------------------------------------------------------------
    def prune(self, days: int, *, dry_run: bool = False, now_ms: int | None = None) -> list[str]:
        """Delete this prefix's daily indices whose day ended more than ``days`` days ago; returns their names.
        Other indices, even ``<prefix>-something-else``, are never touched. With a native policy the engine
        deletes them, and this removes nothing."""
        from corrtrace.collector.retention import expired_indices

        if self.native_retention_days:
            return []
        names = expired_indices(self.client.index_names(f"{self.prefix}-*"), self.prefix, days, now_ms)
        if not dry_run:
            for start in range(0, len(names), 50):  # short URLs: 50 names per DELETE
                self.client.delete_indices(names[start : start + 50])
        return names

    def committed(self, offsets: dict[str, int]) -> None:
        """Nothing to forget: a resend is recognised by its ``_id``."""

    def make_searchable(self) -> None:
        """Refresh this prefix's indices, so a search right after ``collect --once`` finds every line it stored
        (the template refreshes every second: without this, a search in that second misses the last lines).
        A node that does not answer costs a warning, not the run: the lines are stored either way."""
        if not self.stats.requests:
            return
        try:
            self.client.refresh(f"{self.prefix}-*")
        except (TransientError, PermanentError) as exc:
            log.warning("elasticsearch: could not refresh %s-* (searchable within ~1 s anyway): %s", self.prefix, exc)

    def close(self) -> None:
        """Nothing to release: the client belongs to whoever made it (``connect``'s caller), who closes it."""


def _arrival_key(doc_id: str) -> tuple[str, int]:
    """Arrival order inside one source: ids are ``<source>-<offset>``."""
    source, _, offset = doc_id.rpartition("-")
    number = whole_number(offset)  # another shipper's ids may end in anything
    return (doc_id, 0) if number is None else (source, number)


__all__ = ["DEFAULT_PREFIX", "ElasticsearchSink", "connect", "ensure_index_template", "template_body"]

"""The ``collector`` config section and the objects it builds (sources, sinks, pipeline)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from corrtrace.collector.parsers import DEFAULT_ID_ALIASES, DEFAULT_SERVICE_ALIASES
from corrtrace.collector.retention import DEFAULT_MAX_STORE_MB, DEFAULT_RETENTION_DAYS, cloudwatch_days
from corrtrace.collector.retry import DEFAULT_KEEP, DEFAULT_MAX_BYTES, Backoff, DeadLetters
from pydantic import AfterValidator, BeforeValidator

from corrtrace.config import ConfigError, Directory, HttpUrl, Positive, PositiveInt, Region, shown, user_data_dir

MAX_RETENTION_DAYS = 100_000  # ~270 years; more overflows the stores' time arithmetic (0 already means forever)
SINK_NAMES = ("embedded", "elasticsearch", "opensearch", "cloudwatch")


# one node URL, a YAML list of a cluster's nodes, or "a,b,c"
def _each_node_once(urls: list[str]) -> list[str]:
    """A node listed twice (``http://es:9200`` and ``http://es:9200/``) is one node: the client refuses a
    pool with duplicates, and a second entry would not make the cluster any more available."""
    first: dict[str, str] = {}
    for url in urls:
        first.setdefault(url.rstrip("/"), url)
    return list(first.values())


UrlList = Annotated[
    list[HttpUrl],
    BeforeValidator(lambda v: [u.strip() for u in v.split(",") if u.strip()] if isinstance(v, str) else v),
    AfterValidator(_each_node_once),
]


def default_data_dir() -> str:
    """The per-user data directory (``$XDG_DATA_HOME/corrtrace/collector``, else ``~/.local/share/...``), so
    that ``collect`` and ``search`` meet in one store whichever directory they run from."""
    return str(user_data_dir("collector"))


def _placeholder_problem(template: str) -> str | None:
    """What is wrong with a log group/stream template's placeholders (``{service}``, no ``{service.x}``)."""
    import string

    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"not a valid template ({exc})"
    unknown = [name for name in names if name not in ("environment", "service", "host")]
    return f"unknown placeholder {{{unknown[0]}}}" if unknown else None


def _index_prefix_problem(prefix: str) -> str | None:
    """Elasticsearch's and OpenSearch's rules for index names, applied to ``<prefix>-yyyy.mm.dd``: a prefix that
    breaks them would be refused for every document, or (``*``, ``,``) reach other indices in search and prune."""
    if not prefix:
        return "expected a non-empty prefix"
    if prefix != prefix.lower():
        return "expected lowercase (index names are)"
    bad = sorted(set(prefix) & set('\\/*?"<>| ,#:'))
    if bad:
        return f"an index name cannot contain {bad[0]!r}"
    if prefix[0] in "-_+":
        return f"an index name cannot start with {prefix[0]!r}"
    if len(f"{prefix}-0000.00.00".encode()) > 255:
        return "too long (an index name is at most 255 bytes with its -yyyy.mm.dd)"
    return None


@dataclass
class CollectorSettings:
    """Sources, sinks, buffer and checkpoint directory. Secrets (``es_api_key``, ``es_password``) belong in the
    environment (``CORRTRACE_COLLECTOR_ES_API_KEY``), never in the file, and are never printed."""

    paths: list[str] = field(default_factory=list)
    stdin: bool = False
    # collector/README.md, "Where the data lives"
    data_dir: Directory = field(default_factory=lambda: default_data_dir())
    sinks: list[str] = field(default_factory=list)
    start_at_end: bool = False
    # elasticsearch / opensearch
    es_url: UrlList = field(default_factory=lambda: ["http://127.0.0.1:9200"])  # one node, or a cluster's nodes
    es_api_key: str | None = None
    es_username: str | None = None
    es_password: str | None = None
    es_ca_certs: str | None = None
    es_verify_certs: bool = True
    es_timeout: Positive = 30.0  # seconds per request; a busy cluster may need more for a large bulk
    es_auth: str | None = None  # "aws_sigv4": sign with the standard AWS credential chain (Amazon OpenSearch)
    es_aws_region: Region | None = None  # default: AWS_REGION / AWS_DEFAULT_REGION
    es_aws_service: str = "es"  # "es" (OpenSearch Service domains) or "aoss" (OpenSearch Serverless)
    index_prefix: str = "logs-corrtrace"
    index_replicas: int | None = None  # the template's number_of_replicas; default 1 with several es_url nodes
    # cloudwatch
    cloudwatch_log_group: str = "/corrtrace/{environment}"
    cloudwatch_log_stream: str = "{service}/{host}"
    cloudwatch_region: Region | None = None
    cloudwatch_endpoint_url: HttpUrl | None = None
    cloudwatch_max_event_bytes: int = 262_144
    cloudwatch_search_groups: list[str] = field(default_factory=list)
    # retention (collector/README.md, "Operating it"): days each sink keeps events, 0 = forever
    retention_days: int = DEFAULT_RETENTION_DAYS
    es_retention_days: int | None = None  # default: retention_days
    cloudwatch_retention_days: int | None = None  # rounded up to a value CloudWatch accepts
    embedded_retention_days: int | None = None
    es_lifecycle: str = "prune"  # "native": the engine's ILM (Elasticsearch) or ISM (OpenSearch) deletes old indices
    max_store_mb: int = DEFAULT_MAX_STORE_MB  # the embedded store's cap; the oldest events go first
    # the dead-letter file's cap (0: none) and how many rotated files (.1, .2 ...) are kept beside it
    dead_letter_max_mb: int = DEFAULT_MAX_BYTES >> 20
    dead_letter_files: int = DEFAULT_KEEP
    # batching, buffering, retry
    batch_max_events: int = 20_000
    batch_max_bytes: int = 2 << 20
    flush_interval: Positive = 0.5
    buffer_max_bytes: int = 256 << 20
    memory_batches: int = 1
    # batches delivered at once (one bulk request each) while the next ones are read and parsed; a sink that
    # needs its batches in order (CloudWatch, the embedded store) takes one at a time whatever this says
    workers: int = 2
    # glibc only: mmap the multi-megabyte bulk bodies and cap the malloc arenas, so freed buffers go back to the
    # OS (a process-wide allocator setting, made by `corrtrace collect` only; collector/README.md, "Config")
    malloc_tuning: bool = True
    backoff_initial: Positive = 0.2
    backoff_max: Positive = 30.0
    stats_interval: Positive = 30.0
    # formats and multiline records (collector/README.md, "Formats"): per-path entries {path, format, service,
    # time_format, multiline}; the defaults below apply to `paths`, stdin and entries that do not say
    sources: list[dict[str, Any]] = field(default_factory=list)
    format: str = "auto"
    id_aliases: list[str] = field(default_factory=lambda: list(DEFAULT_ID_ALIASES))
    service_aliases: list[str] = field(default_factory=lambda: list(DEFAULT_SERVICE_ALIASES))
    multiline: list[Any] = field(default_factory=lambda: ["python", "java"])
    multiline_max_lines: PositiveInt = 500
    multiline_max_bytes: PositiveInt = 65_536
    multiline_flush_timeout: float = 2.0

    def validate(self) -> CollectorSettings:
        unknown = [s for s in self.sinks if s not in SINK_NAMES]
        if unknown:
            raise ConfigError(f"collector.sinks: unknown sink {unknown[0]!r} (expected one of {', '.join(SINK_NAMES)})")
        for name in ("batch_max_events", "batch_max_bytes", "buffer_max_bytes", "memory_batches", "workers"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"collector.{name}: expected a positive number, got {shown(getattr(self, name))}")
        for name in ("retention_days", "es_retention_days", "cloudwatch_retention_days", "embedded_retention_days"):
            if (getattr(self, name) or 0) > MAX_RETENTION_DAYS:
                raise ConfigError(f"collector.{name}: expected at most {MAX_RETENTION_DAYS} days (0 = forever)")
        if self.cloudwatch_max_event_bytes < 1024 or self.cloudwatch_max_event_bytes > 1_048_576:
            raise ConfigError(
                "collector.cloudwatch_max_event_bytes: expected 1024..1048576 "
                f"(message bytes + 26), got {shown(self.cloudwatch_max_event_bytes)}"
            )
        if self.es_auth not in (None, "aws_sigv4"):
            raise ConfigError(f"collector.es_auth: expected aws_sigv4 (or unset), got {shown(self.es_auth)}")
        if self.es_aws_service not in ("es", "aoss"):
            raise ConfigError(f"collector.es_aws_service: expected es or aoss, got {shown(self.es_aws_service)}")
        if self.es_auth and "elasticsearch" in self.sinks:
            raise ConfigError(
                "collector.es_auth: aws_sigv4 signs requests to Amazon OpenSearch Service; use the "
                "opensearch sink (the Elasticsearch 8 client refuses non-Elastic servers)"
            )
        if not self.es_url:
            raise ConfigError("collector.es_url: expected a node URL or a list of them")
        if self.es_lifecycle not in ("prune", "native"):
            raise ConfigError(f"collector.es_lifecycle: expected prune or native, got {shown(self.es_lifecycle)}")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ConfigError("collector.backoff_max: expected >= backoff_initial > 0")
        for key in ("cloudwatch_log_group", "cloudwatch_log_stream"):
            problem = _placeholder_problem(getattr(self, key))
            if problem:
                raise ConfigError(f"collector.{key}: {problem} (use {{environment}}, {{service}}, {{host}})")
        problem = _index_prefix_problem(self.index_prefix)  # checked whatever the sinks: `search` may pick one
        if problem:
            raise ConfigError(f"collector.index_prefix: {problem}, got {shown(self.index_prefix)}")
        from corrtrace.collector.sources.config import source_specs

        source_specs(self)  # every format and multiline rule compiles (ConfigError naming the key otherwise)
        return self

    @property
    def dir(self) -> Path:
        return Path(os.path.expanduser(self.data_dir))

    def make_data_dir(self) -> Path:
        """Create ``data_dir`` (checkpoint, buffer, dead letters, store); one ConfigError line when it cannot be
        (no permission, a path under /proc, a read-only filesystem)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "store").mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"collector.data_dir: cannot create {exc.filename or self.dir} ({exc.strerror or exc})"
            ) from None
        return self.dir

    @property
    def replicas(self) -> int:
        """Copies of each shard beyond the primary: one when a cluster is listed, so a node can die."""
        return self.index_replicas if self.index_replicas is not None else int(len(self.es_url) > 1)

    def retention_for(self, sink: str) -> int:
        """Days ``sink`` keeps events (0 = forever): its own ``<sink>_retention_days``, else ``retention_days``."""
        own = getattr(self, f"{'es' if sink in ('elasticsearch', 'opensearch') else sink}_retention_days", None)
        return self.retention_days if own is None else int(own)

    def backoff(self) -> Backoff:
        return Backoff(self.backoff_initial, self.backoff_max)

    def build_sinks(self, *, fail_on_refusal: bool = False) -> list[Any]:
        """The configured sinks; with none configured, the embedded store in ``data_dir``.

        ``fail_on_refusal``: a request refused for a reason a retry cannot fix (bad credentials, 403) ends the
        run instead of being retried slowly; ``collect --once`` wants that, a long-running collector does not.
        """
        from corrtrace.collector.sinks.embedded import EmbeddedStore

        names = self.sinks or ["embedded"]
        dead = DeadLetters(self.dir / "dead-letters.jsonl", self.dead_letter_max_mb << 20, self.dead_letter_files)
        out: list[Any] = []
        for name in names:
            if name == "embedded":
                self.make_data_dir()
                out.append(
                    EmbeddedStore(self.dir / "store", backoff=self.backoff(), max_bytes=self.max_store_mb << 20 or None)
                )
            elif name in ("elasticsearch", "opensearch"):
                from corrtrace.collector.sinks.elasticsearch import ElasticsearchSink, connect

                options: dict[str, Any] = {
                    "api_key": self.es_api_key,
                    "username": self.es_username,
                    "password": self.es_password,
                    "ca_certs": self.es_ca_certs,
                    "verify_certs": self.es_verify_certs,
                    "timeout": self.es_timeout,
                }
                if name == "elasticsearch" and len(self.es_url) == 1 and not self.es_auth:
                    from corrtrace.collector.sinks.node_client import NodeClient

                    client: Any = NodeClient(self.es_url[0], **options)  # one node: no elasticsearch-py import
                else:
                    client = connect(
                        self.es_url,
                        flavor=name,
                        aws_sigv4=(self.es_aws_region, self.es_aws_service) if self.es_auth else None,
                        **options,
                    )
                sink = ElasticsearchSink(
                    client,
                    prefix=self.index_prefix,
                    dead_letters=dead,
                    backoff=self.backoff(),
                    fail_on_refusal=fail_on_refusal,
                    replicas=self.replicas,
                    native_retention_days=self.retention_for(name) if self.es_lifecycle == "native" else 0,
                )
                sink.name = name
                out.append(sink)
            else:
                from corrtrace.collector.sinks.cloudwatch import CloudWatchSink, logs_client
                from corrtrace.collector.sinks.cw_batcher import CwLimits

                out.append(
                    CloudWatchSink(
                        logs_client(self.cloudwatch_endpoint_url, self.cloudwatch_region),
                        log_group=self.cloudwatch_log_group,
                        log_stream=self.cloudwatch_log_stream,
                        limits=CwLimits(max_event_bytes=self.cloudwatch_max_event_bytes),
                        dead_letters=dead,
                        backoff=self.backoff(),
                        journal_path=self.dir / "cloudwatch-landed.txt",
                        search_groups=self.cloudwatch_search_groups or None,
                        retention_days=cloudwatch_days(days) if (days := self.retention_for("cloudwatch")) else None,
                    )
                )
        return out

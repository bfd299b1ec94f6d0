"""Demo settings (config section ``demo``) and the mesh layout the runner hands to every child process.

The layout is one JSON file (``mesh.json`` in the work directory): each service reads its ports, peers and
store paths from it, and ``corrtrace mdm check`` finds the stores through it. The HMAC secret is never in it:
children get it from the environment, later commands from the ``secret`` file (mode 0600) beside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET_ENV = "CORRTRACE_DEMO_SECRET"
MESH_ENV = "CORRTRACE_DEMO_MESH"
SERVICES = ("ui", "catalog", "checkout", "payment", "shipping", "aggregation")
HTTP_PARTICIPANTS = ("catalog", "checkout", "payment")


@dataclass
class DemoSettings:
    """What ``corrtrace demo`` does; every key is also ``CORRTRACE_DEMO_<KEY>``.

    Rates are shares of the orders (0..1); ``alarm_period_seconds`` is the alarms' period (10, 20, 30 or a
    multiple of 60: short so the demo is quick); ``stream_*`` configure shipping's event-source mapping like
    Lambda's (BatchSize, MaximumRetryAttempts, ParallelizationFactor); ``settle_timeout_seconds`` bounds the
    wait for the last rollbacks and alerts after the orders are sent while nothing moves (each step of progress
    grants it again, up to 4 times it in all): a slow host is waited for, a stuck mesh is not.
    """

    orders: int = 60
    seed: int = 7
    decline_rate: float = 0.10
    poison_rate: float = 0.03
    slow_rate: float = 0.05
    slow_ms: int = 700
    latency_threshold_ms: int = 500
    concurrency: int = 8
    stock_per_sku: int = 10_000
    alarm_period_seconds: int = 10
    stream_batch_size: int = 10
    stream_max_retries: int = 2
    stream_retry_delay_ms: int = 50
    stream_poll_ms: int = 100
    stream_parallelization: int = 4
    settle_timeout_seconds: float = 60.0
    manager_outage_seconds: float = 0.0  # fault: stop the manager this long while orders (and failures) flow
    workdir: str = ".corrtrace-demo"
    elasticsearch_url: str = ""
    index_prefix: str = "logs-corrtrace"
    with_nginx: bool = False  # a real nginx in front of ui (scripts/nginx/nginx.sh): orders go through it


@dataclass
class Mesh:
    """Where everything of one demo run lives: ports, URLs, files, AWS resource names."""

    workdir: str
    moto_url: str
    # the manager's state table sits on a second moto: moto serves one request at a time (GIL), real DynamoDB
    # does not, and the manager makes most of the demo's DynamoDB calls
    txmanager_moto_url: str = ""
    region: str = "us-east-1"
    ports: dict[str, int] = field(default_factory=dict)
    orders_table: str = "demo-orders"
    txmanager_table: str = "demo-txmanager"
    failure_table: str = "demo-failures"  # the manager's failure channel (txmanager/failures.py)
    failure_dlq: str = "demo-failures-dlq"
    topic_arn: str = ""
    aggregation_queue_url: str = ""
    shipping_dlq_url: str = ""
    elasticsearch_url: str = ""
    index_prefix: str = "logs-corrtrace"
    settings: dict[str, Any] = field(default_factory=dict)

    # --- derived paths and URLs -------------------------------------------------------------------
    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def log_path(self, service: str) -> Path:
        return Path(self.workdir) / "logs" / f"{service}.log"

    @property
    def nginx_access_log(self) -> Path:
        """nginx's access log (--with-nginx): its own folder, since the JSON-lines glob is ``logs/*.log``."""
        return Path(self.workdir) / "logs" / "nginx" / "access.log"

    def db_path(self, service: str) -> Path:
        return Path(self.workdir) / "db" / f"{service}.sqlite3"

    @property
    def collector_dir(self) -> Path:
        """The collector's data directory (checkpoint, buffer; the embedded store is its ``store``)."""
        return Path(self.workdir) / "collector"

    @property
    def store_path(self) -> Path:
        """The embedded log store (used when no Elasticsearch URL is set), where ``corrtrace search`` looks."""
        return self.collector_dir / "store"

    @property
    def secret_path(self) -> Path:
        return Path(self.workdir) / "secret"

    def demo(self) -> DemoSettings:
        known = {f.name for f in dataclasses.fields(DemoSettings)}
        return DemoSettings(**{k: v for k, v in self.settings.items() if k in known})

    # --- persistence --------------------------------------------------------------------------------
    def save(self) -> Path:
        path = Path(self.workdir) / "mesh.json"
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Mesh:
        chosen = Path(path or os.environ.get(MESH_ENV) or Path(DemoSettings.workdir) / "mesh.json")
        if chosen.is_dir():
            chosen = chosen / "mesh.json"
        try:
            data = json.loads(chosen.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{chosen}: no demo mesh here; start one with `corrtrace demo --keep-running` or pass --mesh"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(_not_a_mesh(chosen, str(exc))) from None
        if not isinstance(data, dict):
            raise ValueError(_not_a_mesh(chosen, f"a JSON {type(data).__name__}, not an object"))
        fields = dataclasses.fields(cls)
        unknown = sorted(str(key) for key in data if key not in {f.name for f in fields})
        missing = [
            f.name for f in fields if f.name not in data and f.default is f.default_factory is dataclasses.MISSING
        ]
        if unknown or missing:
            what = f"unknown key {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
            raise ValueError(_not_a_mesh(chosen, what))
        return cls(**data)

    def secret(self) -> str:
        """The manager's HMAC secret: environment first, then the 0600 file the runner wrote."""
        value = os.environ.get(SECRET_ENV)
        if value:
            return value
        return self.secret_path.read_text(encoding="utf-8").strip()


def _not_a_mesh(path: Path, reason: str) -> str:
    """The one line ``mdm check`` prints for a file that is not the mesh a demo wrote."""
    return f"{path}: not a demo mesh file ({reason}); start a demo with `corrtrace demo --keep-running` or pass --mesh"


def write_secret(mesh: Mesh, secret: str) -> None:
    path = mesh.secret_path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret)

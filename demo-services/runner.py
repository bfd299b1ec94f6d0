"""``corrtrace demo``: start the whole mesh, send orders with injected failures, prove the clean-up.

Starts its own moto, the transaction manager, the five services plus aggregation, the alert engine and
the collector, each as its own process on a free loopback port writing JSON logs to its own
file. Then it sends N orders, waits until every order is final, verifies the rollbacks in each service's
own database, runs the MDM check and shows one failed request's flow as ``corrtrace search`` does.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from corrtrace.demo import aws, mdm
from corrtrace.demo.faults import FaultPlan, plan_orders
from corrtrace.demo.outage import ManagerOutage
from corrtrace.demo.paths import failure_reports, rollback_paths
from corrtrace.demo.processes import ChildFailed, Supervisor, free_ports
from corrtrace.demo.runtime import MANAGER_UNAVAILABLE
from corrtrace.demo.settings import MESH_ENV, SECRET_ENV, DemoSettings, Mesh, write_secret
from corrtrace.demo.stores import snapshot
from corrtrace.demo.verify import OrderOutcome, Verification, settled, verify

from corrtrace.ids import new_uuid7

START_ORDER = (
    "txmanager",
    "trigger",
    "catalog",
    "checkout",
    "payment",
    "ui",
    "shipping",
    "aggregation",
    "alerts",
    "pipeline",
)
HEALTH_PATH = {"txmanager": "/healthz"}
AGGREGATED_KINDS = ("order-committed", "payment-captured", "shipment-created")
# the logs the runner waits to see shipped (the pipeline's own log moves whenever it ships, so not that one)
LOGGED = ("ui", "catalog", "checkout", "payment", "shipping", "aggregation", "txmanager", "trigger", "alerts")


class DemoError(RuntimeError):
    """The demo could not run (a process failed to start, a timeout); the message says which and why."""


def nginx_script() -> Path:
    """scripts/nginx/nginx.sh of the checkout this package runs from (or of the current directory's)."""
    for base in (Path(__file__).resolve().parents[1], Path.cwd(), *Path.cwd().parents):
        script = base / "scripts" / "nginx" / "nginx.sh"
        if script.exists():
            return script
    raise DemoError("--with-nginx needs scripts/nginx/nginx.sh (run from a corrtrace checkout)")


@dataclass
class DemoReport:
    orders: int = 0
    ok: int = 0
    failed: int = 0
    expected_failures: dict[str, int] = field(default_factory=dict)
    verification: Verification = field(default_factory=Verification)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    mdm: dict[str, Any] = field(default_factory=dict)
    flow: list[dict[str, Any]] = field(default_factory=list)
    flow_correlation_id: str | None = None
    shipping: dict[str, Any] = field(default_factory=dict)
    aggregation: dict[str, Any] = field(default_factory=dict)
    dashboards: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    unsettled: list[str] = field(default_factory=list)
    outcomes: list[OrderOutcome] = field(default_factory=list)
    # what each injected kind became: {"decline": {"failed": 5}, "slow": {"succeeded": 1}, ...}
    became: dict[str, dict[str, int]] = field(default_factory=dict)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)  # per rollback: the path that triggered it
    manager_outage: dict[str, Any] = field(default_factory=dict)  # what the --manager-outage fault did

    @property
    def passed(self) -> bool:
        return self.verification.passed and not self.mdm.get("inconsistencies") and not self.manager_outage.get("error")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("outcomes")
        data["passed"] = self.passed
        data["verification"]["passed"] = self.verification.passed
        return data


class Demo:
    """The running mesh. Use as a context manager: leaving it stops every process it started."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.workdir = Path(settings.workdir).resolve()
        self.supervisor = Supervisor(self.workdir)
        self.secret = secrets.token_urlsafe(32)
        self.mesh: Mesh | None = None
        self.http = httpx.Client(timeout=30.0)

    # --- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> Demo:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _env(self, mesh_path: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                MESH_ENV: str(mesh_path),
                SECRET_ENV: self.secret,
                "CORRTRACE_TXMANAGER_SECRET": self.secret,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("AWS_ENDPOINT_URL", None)
        env.pop("AWS_SESSION_TOKEN", None)
        return env

    def start(self, on_step: Callable[[str], None] | None = None) -> Mesh:
        step = on_step or (lambda _msg: None)
        if self.workdir.exists() and any(self.workdir.iterdir()) and not (self.workdir / "mesh.json").exists():
            raise DemoError(
                f"{self.workdir} is not empty and not a demo work directory (no mesh.json); "
                "pass --workdir with a new or empty directory"
            )
        if self.workdir.exists():
            for sub in ("logs", "db", "collector", "dashboards"):
                shutil.rmtree(self.workdir / sub, ignore_errors=True)
        try:
            for sub in ("logs", "db"):
                (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            where = exc.filename or self.workdir
            raise DemoError(f"cannot create the work directory {where}: {exc.strerror}") from None
        moto_port, state_port, nginx_port, *service_ports = free_ports(3 + len(START_ORDER))
        ports = dict(zip(START_ORDER, service_ports, strict=True))
        if self.settings.with_nginx:
            ports["nginx"] = nginx_port
        mesh = Mesh(
            workdir=str(self.workdir),
            moto_url=f"http://127.0.0.1:{moto_port}",
            txmanager_moto_url=f"http://127.0.0.1:{state_port}",
            ports=ports,
            elasticsearch_url=self.settings.elasticsearch_url,
            index_prefix=self.settings.index_prefix,
            settings=asdict(self.settings),
        )
        self.mesh = mesh
        write_secret(mesh, self.secret)
        env = self._env(self.workdir / "mesh.json")
        step(f"moto on :{moto_port} and :{state_port}")
        motos = [
            (self.supervisor.start(name, [sys.executable, "-m", "corrtrace.demo.motoserver", str(port)], env), port)
            for name, port in (("moto", moto_port), ("moto-txmanager", state_port))
        ]
        for child, port in motos:
            self.supervisor.wait_healthy(child, f"http://127.0.0.1:{port}/moto-api/")
        aws.create_resources(mesh)
        mesh.save()
        started = []
        for name in START_ORDER:
            started.append((name, self.supervisor.start_service(name, env)))
        for name, child in started:
            self.supervisor.wait_healthy(child, mesh.url(name) + HEALTH_PATH.get(name, "/health"))
            step(f"{name} on :{ports[name]}")
        if self.settings.with_nginx:
            self._start_nginx(mesh, env)
            step(f"nginx on :{ports['nginx']} -> ui (access log {mesh.nginx_access_log})")
        return mesh

    def _start_nginx(self, mesh: Mesh, env: dict[str, str]) -> None:
        """Debian's nginx in the foreground under the supervisor, with corrtrace's snippets, in front of ui."""
        nginx_env = {
            **env,
            "NGINX_PORT": str(mesh.ports["nginx"]),
            "NGINX_UPSTREAM": f"127.0.0.1:{mesh.ports['ui']}",
            "NGINX_DIR": str(self.workdir / "nginx"),
            "NGINX_ACCESS_LOG": str(mesh.nginx_access_log),
        }
        child = self.supervisor.start("nginx", ["bash", str(nginx_script()), "run"], nginx_env)
        self.supervisor.wait_healthy(child, mesh.url("nginx") + "/health", timeout=180.0)  # may apt-get first

    def stop(self) -> None:
        self.http.close()
        self.supervisor.stop_all()

    def urls(self) -> dict[str, str]:
        assert self.mesh is not None
        urls = {name: self.mesh.url(name) for name in (*START_ORDER, "nginx") if name in self.mesh.ports}
        urls["moto"] = self.mesh.moto_url
        urls["moto-txmanager"] = self.mesh.txmanager_moto_url
        if self.mesh.elasticsearch_url:
            urls["elasticsearch"] = self.mesh.elasticsearch_url
        return urls

    # --- traffic ----------------------------------------------------------------------------------------
    def place(self, plan: FaultPlan) -> OrderOutcome:
        assert self.mesh is not None
        from corrtrace.middleware import DEFAULT_HEADER

        cid = new_uuid7()
        try:
            url = f"{self.mesh.url('nginx' if 'nginx' in self.mesh.ports else 'ui')}/orders"
            response = self.http.post(url, json=plan.payload(), headers={DEFAULT_HEADER: cid})
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            return OrderOutcome(plan, cid, response.status_code, body)
        except httpx.HTTPError as exc:
            return OrderOutcome(plan, cid, 0, {"error": f"{type(exc).__name__}: {exc}"})

    def send(self, plans: list[FaultPlan], on_done: Callable[[OrderOutcome], None] | None = None) -> list[OrderOutcome]:
        """Place every order, ``concurrency`` at a time; Ctrl-C cancels the orders not yet sent."""
        pool = ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency), thread_name_prefix="order")
        futures = [pool.submit(self.place, plan) for plan in plans]
        outcomes: list[OrderOutcome] = []
        try:
            for future in futures:
                outcome = future.result()
                outcomes.append(outcome)
                if on_done:
                    on_done(outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return outcomes

    # --- settling and checking --------------------------------------------------------------------------
    def status(self, service: str, path: str) -> dict[str, Any]:
        assert self.mesh is not None
        try:
            data = self.http.get(self.mesh.url(service) + path, timeout=10.0).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def settle(
        self, outcomes: list[OrderOutcome], timeout: float, alerts: frozenset[str] = frozenset()
    ) -> list[OrderOutcome]:
        """Wait until every order is final, the pipeline has shipped every log line and the ``alerts`` the
        injected failures must raise have fired (an alarm fires when its period ends); returns the stragglers.

        ``timeout`` bounds the wait *without progress*, not the whole wait: on a slow or loaded host the work
        still to do (orders to settle, lines to ship, alerts, aggregated events) finishes later but keeps moving,
        and each step forward grants another ``timeout``. A stuck mesh still ends after ``timeout`` (at most
        ``4 x timeout`` in all)."""
        assert self.mesh is not None
        started = time.monotonic()
        deadline = started + timeout
        pending = list(outcomes)
        successes = sum(not o.expected_failure for o in outcomes)
        best: tuple[int, ...] = ()  # the least seen of (orders pending, bytes unshipped, alerts, events missing)
        while time.monotonic() < min(deadline, started + 4 * timeout):
            self.supervisor.check_alive()
            snap = snapshot(self.mesh)
            pending = [o for o in pending if not settled(o, snap) or not _verified(o, snap)]
            behind = self._pipeline_behind()
            missing = len(alerts - self.fired_alerts())
            short = self._aggregation_short(successes)
            if not pending and behind == 0 and not missing and not short:
                return []
            now = (len(pending), behind, missing, short)
            if not best or any(n < b for n, b in zip(now, best, strict=True)):
                deadline = time.monotonic() + timeout  # progress: some of the remaining work is smaller than ever
                best = tuple(map(min, now, best)) if best else now
            time.sleep(0.2)
        return pending

    def _aggregation_short(self, successes: int) -> int:
        """How many of the successes' events the aggregation service has not counted yet (SNS -> SQS is
        asynchronous); 0 when it has them all."""
        totals = self.status("aggregation", "/report").get("totals", {})
        return sum(max(0, successes - int(totals.get(kind, 0))) for kind in AGGREGATED_KINDS)

    def fired_alerts(self) -> set[str]:
        fired = self.status("alerts", "/status").get("alerts", [])
        return {str(a.get("alert") or a.get("alarm_name")) for a in fired}

    def _pipeline_behind(self) -> int:
        """Bytes of the services' logs the pipeline has not shipped yet (1 while its status cannot be read)."""
        assert self.mesh is not None
        status = self.status("pipeline", "/status")
        offsets: dict[str, int] = status.get("offsets", {})
        behind = 0
        for path in [self.mesh.log_path(name) for name in LOGGED] + [self.mesh.nginx_access_log]:
            if path.exists():
                behind += max(0, path.stat().st_size - offsets.get(str(path), 0))
        return behind if status else max(behind, 1)

    def search(self, correlation_id: str) -> list[dict[str, Any]]:
        """The request's lines, as ``corrtrace search`` returns them (collector's ``search_events``)."""
        assert self.mesh is not None
        from corrtrace.demo.logstore import search

        return search(self.mesh, correlation_id)

    def run(self, on_progress: Callable[[OrderOutcome], None] | None = None) -> DemoReport:
        """Send the planned orders, wait for the dust to settle and check everything."""
        assert self.mesh is not None
        started = time.monotonic()
        s = self.settings
        plans = plan_orders(
            s.orders, seed=s.seed, decline_rate=s.decline_rate, poison_rate=s.poison_rate, slow_rate=s.slow_rate
        )
        outage = self._outage(len(plans))

        def done(outcome: OrderOutcome) -> None:
            if outage is not None:
                outage.order_done()
            if on_progress:
                on_progress(outcome)

        outcomes = self.send(plans, done)
        if outage is not None:
            outage.go.set()
            outage.join()
            for o in outcomes:  # the orders the outage cut short: their failures went to the failure table
                o.outage = o.body.get("reason") == MANAGER_UNAVAILABLE
        sent = time.monotonic()
        stragglers = self.settle(
            outcomes, s.settle_timeout_seconds, expected_alerts([o.plan for o in outcomes if not o.outage])
        )
        settled_at = time.monotonic()
        report = DemoReport(orders=len(plans), outcomes=outcomes, urls=self.urls())
        report.unsettled = [o.correlation_id for o in stragglers]
        report.expected_failures = {
            "decline": sum(p.fault == "decline" for p in plans),
            "poison": sum(p.fault == "poison" for p in plans),
            "slow": sum(p.slow for p in plans),
            "outage": sum(o.outage for o in outcomes),
        }
        snap = snapshot(self.mesh)
        report.verification = verify(outcomes, snap)
        report.ok = sum(1 for o in outcomes if snap.orders.get(o.correlation_id, {}).get("status") == "committed")
        report.failed = len(outcomes) - report.ok
        for o in outcomes:
            end = "succeeded" if snap.orders.get(o.correlation_id, {}).get("status") == "committed" else "failed"
            for kind in {o.plan.fault, "slow" if o.plan.slow else "none", "outage" if o.outage else "none"} - {"none"}:
                counts = report.became.setdefault(kind, {})
                counts[end] = counts.get(end, 0) + 1
        report.alerts = list(self.status("alerts", "/status").get("alerts", []))
        report.shipping = self.status("shipping", "/health").get("stats", {})
        report.aggregation = self.status("aggregation", "/report").get("totals", {})
        reports = failure_reports(self.mesh)
        report.rollbacks = rollback_paths(self.mesh, outcomes, self.secret, reports)
        if outage is not None:
            report.manager_outage = outage.report(reports, report.expected_failures["outage"])
        report.mdm = mdm.run_check(self.mesh)
        failed = [o for o in outcomes if o.plan.fault == "poison"] or [o for o in outcomes if o.expected_failure]
        if failed:
            report.flow_correlation_id = failed[0].correlation_id
            report.flow = self.search(failed[0].correlation_id)
        report.dashboards = self.write_dashboards()
        report.seconds = time.monotonic() - started
        report.phases = {
            "send": round(sent - started, 2),
            "settle": round(settled_at - sent, 2),
            "check": round(time.monotonic() - settled_at, 2),
        }
        return report

    def _outage(self, orders: int) -> ManagerOutage | None:
        """The --manager-outage fault, started (it waits for a third of the orders), or None."""
        if self.settings.manager_outage_seconds <= 0:
            return None
        assert self.mesh is not None
        mesh = self.mesh
        env = self._env(Path(mesh.workdir) / "mesh.json")

        def restart() -> None:
            child = self.supervisor.start_service("txmanager", env)
            self.supervisor.wait_healthy(child, mesh.url("txmanager") + HEALTH_PATH["txmanager"])

        outage = ManagerOutage(self.supervisor, restart, self.settings.manager_outage_seconds, orders // 3)
        outage.start()
        return outage

    def write_dashboards(self) -> list[str]:
        assert self.mesh is not None
        from corrtrace.demo.logstore import write_dashboards

        return write_dashboards(self.mesh)


def expected_alerts(plans: list[FaultPlan]) -> frozenset[str]:
    """The alerts (demo-services/alerts.yaml) the planned failures must raise."""
    expected = set()
    if any(p.fault == "poison" for p in plans):
        expected |= {"code-errors", "stream-jam"}
    if any(p.fault == "decline" for p in plans):
        expected.add("payment-declines")
    if any(p.slow for p in plans):
        expected.add("payment-latency")
    return frozenset(expected)


def _verified(outcome: OrderOutcome, snap: Any) -> bool:
    """Settled the way the fault plan says (a failure waits for every rollback, a success for its shipment)."""
    return not verify([outcome], _without_stock(snap)).problems


def _without_stock(snap: Any) -> Any:
    from dataclasses import replace

    return replace(snap, stock={})


def run_demo(settings: DemoSettings) -> DemoReport:
    """Start, run, stop: the whole demo as one call (what the tests and ``corrtrace demo`` use)."""
    try:
        with Demo(settings) as demo:
            return demo.run()
    except ChildFailed as exc:
        raise DemoError(str(exc)) from None

"""Requests/s and p50/p99 latency of real servers under wrk: bare vs corrtrace vs asgi-correlation-id vs OTel.

Real server processes on loopback, one worker each: uvicorn with a small FastAPI app and gunicorn (sync worker)
with a small Flask app (benchmarks/_load_apps.py), each bare, with corrtrace's middleware (access lines on,
written as JSON to a file), with asgi-correlation-id (ASGI only) and with OpenTelemetry's
``OpenTelemetryMiddleware``. wrk (Debian package, installed when missing) drives each at fixed concurrency;
requests carry no ID, so every one is generated. The machine is shared: all servers stay up and the wrk runs
alternate across them, round after round (the order rotates); each figure is the median over the rounds, and the
best round's req/s is printed too (the least disturbed by other processes).
On a shared machine req/s mostly measures how much CPU the scheduler gave each server; the CPU time the server
process tree spent per request (utime + stime from ``/proc``, divided by the requests wrk completed) does not
depend on that, so it is printed too, and ``bare CPU / variant CPU`` is the req/s ratio the variant would reach
on a machine of its own (the servers are CPU-bound single workers); its user and system (kernel) parts are
printed too (the access line's ``os.write`` is system time, the middleware's code user time). That ratio is taken
per round against the same round's bare run (paired, as benchmarks/_paired.py pairs batches) and printed as the
median with its quartiles, so a reader sees whether a 1 % target is inside the run's spread.
Targets (issue 13 §3): corrtrace >= 0.95x the bare server's requests/s and >= asgi-correlation-id's.

``--callgrind`` counts instead of timing, which no other process on the machine can disturb: each server's worker
(bare, with its own access log, corrtrace, and corrtrace without the ID in the response) runs under ``valgrind
--tool=callgrind`` (``PYTHONHASHSEED=0``, address randomisation off where allowed, the wall clock held, uvicorn's
tick slowed: ``_load_apps.py``), is sent ``warmup + N`` and, in a second run, ``warmup + 2N`` of wrk's requests one
at a time, and exits; the difference of the two runs' instruction totals over N is one request's count, start-up
and exit cancelled out. It prints both counts and ``bare/corrtrace`` (the req/s ratio a CPU-bound single worker
would reach, user-space code only), and how much of corrtrace's overhead is the one response header it adds.

    python benchmarks/load.py [--duration 4] [--rounds 5] [--connections 16] [--base-port N] [--json]
    python benchmarks/load.py --callgrind [--requests 500] [--warmup 200] [--jobs 2] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
# "server-log": the bare app with the server's own access log written to a file (uvicorn's ``uvicorn.access``
# logger, gunicorn's ``--access-logfile``): what a service that wants an access line runs without corrtrace
SERVERS = {
    "uvicorn+fastapi": ("bare", "server-log", "corrtrace", "asgi-correlation-id", "otel"),
    "gunicorn+flask": ("bare", "server-log", "corrtrace", "otel"),
}
START_TIMEOUT = 60.0
ACCESS_LOGGED = ("server-log", "corrtrace")  # the variants that write an access line per request to a file
PEER_NAMES = {"server-log": "bare with the server's own access log"}


@dataclass
class Server:
    kind: str
    variant: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def label(self) -> str:
        return f"{self.kind} {self.variant}"


def _free_port(first: int) -> int:
    """A free loopback port: the first free one from ``first`` (--base-port), else one the kernel picks."""
    for port in range(first, first + 200) if first else [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError(f"no free port in {first}..{first + 199}")


def _command(kind: str, variant: str, port: int, log: Path) -> list[str]:
    if kind == "uvicorn+fastapi":  # the access log to a file, if any, is set up by the app (_load_apps.py)
        return [
            str(BIN / "uvicorn"),
            "_load_apps:fastapi_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *(() if variant == "server-log" else ("--no-access-log",)),
            "--log-level",
            "warning",
        ]
    return [
        str(BIN / "gunicorn"),
        "_load_apps:flask_app",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
        *(("--access-logfile", str(log)) if variant == "server-log" else ()),
    ]


def uvicorn_stack() -> str:
    """The HTTP parser and event loop uvicorn runs here: its defaults (``--http auto --loop auto``) take httptools
    and uvloop when they are installed (``uvicorn[standard]``, which ``fastapi[standard]`` installs), else h11 and
    asyncio. The figures depend on it: httptools and uvloop make the bare server about half as costly a request
    (middleware/README.md, "Under a real server")."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


def start(
    kind: str,
    variant: str,
    workdir: Path,
    base_port: int,
    *,
    prefix: tuple[str, ...] = (),
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT,
    name: str = "",
) -> Server:
    """Start one server process (``prefix``: a command it runs under, such as valgrind) and wait until it listens."""
    port = _free_port(base_port)
    name = name or f"{kind}-{variant}"
    log = workdir / f"{name}.jsonl"
    env = {**os.environ, **(env or {}), "CORRTRACE_LOAD_VARIANT": variant, "CORRTRACE_LOAD_LOG": str(log)}
    command = [*prefix, *_command(kind, variant, port, log), *extra_args]
    with open(workdir / f"{name}.out", "wb") as out:
        proc = subprocess.Popen(command, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(kind, variant, port, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.label} exited: {(workdir / f'{name}.out').read_text()[-800:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{server.label} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _millis(text: str) -> float:
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, requests, p50 and p99 (ms), and non-2xx/socket errors from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    requests = float(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    p50 = _millis(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _millis(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "requests": requests,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": float(errors.group(1)) if errors else 0.0,
    }


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) of process ``pid`` and its children (a gunicorn worker is a child)."""
    user = system = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: ppid
            user += int(fields[11]) / _TICK  # utime
            system += int(fields[12]) / _TICK  # stime
    return user, system


def wrk(server: Server, duration: int, connections: int) -> dict[str, float]:
    before = tree_cpu(server.proc.pid)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "--latency",
            f"http://127.0.0.1:{server.port}/",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    result = parse_wrk(out)
    after, per_request = tree_cpu(server.proc.pid), 1e6 / max(result["requests"], 1.0)
    result["user_us"] = (after[0] - before[0]) * per_request
    result["sys_us"] = (after[1] - before[1]) * per_request
    result["cpu_us"] = result["user_us"] + result["sys_us"]
    return result


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "lib" / "apt-install.sh"), "wrk"], check=True)


def run(duration: int, rounds: int, connections: int, base_port: int = 0) -> dict[str, Any]:
    ensure_wrk()
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="corrtrace-load-") as tmp:
        workdir = Path(tmp)
        servers = [start(kind, v, workdir, base_port) for kind, variants in SERVERS.items() for v in variants]
        try:
            for server in servers:  # warm-up: imports, first-request paths, the log file opened
                wrk(server, 1, connections)
            for round_no in range(rounds):
                shift = round_no % len(servers)
                for server in servers[shift:] + servers[:shift]:
                    results.setdefault(server.label, []).append(wrk(server, duration, connections))
            logged = {s.label: _lines(s.log) for s in servers if s.variant in ACCESS_LOGGED}
        finally:
            for server in servers:
                server.proc.terminate()
            for server in servers:
                try:
                    server.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.proc.kill()
    medians = {
        label: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for label, runs in results.items()
    }
    best = {label: max(r["rps"] for r in runs) for label, runs in results.items()}
    return {
        "duration_s": duration,
        "rounds": rounds,
        "connections": connections,
        "uvicorn": uvicorn_stack(),
        "medians": medians,
        "best_rps": best,
        "cpu_ratios": paired_cpu_ratios(results),
        "runs": results,
        "access_lines": logged,
    }


def paired_cpu_ratios(results: dict[str, list[dict[str, float]]]) -> dict[str, list[float]]:
    """Per round, ``bare CPU / variant CPU`` of each variant against its own server's bare run of the same round
    (the machine's drift between rounds cancels in each ratio); the report prints their median and quartiles."""
    return {
        label: [b["cpu_us"] / r["cpu_us"] for b, r in zip(results[f"{label.split(' ')[0]} bare"], runs, strict=True)]
        for label, runs in results.items()
    }


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median and quartiles (the median itself for fewer than two values)."""
    median = statistics.median(values)
    if len(values) < 2:
        return median, median, median
    q1, _, q3 = statistics.quantiles(values, n=4)
    return median, q1, q3


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def report(data: dict[str, Any]) -> None:
    medians = data["medians"]
    print(
        f"wrk -t1 -c{data['connections']} -d{data['duration_s']:g}s, fresh IDs, "
        f"median of {data['rounds']} alternating rounds (machine shared); bare/it: the median of each round's "
        f"bare CPU / its CPU per request [quartiles]; uvicorn on {data['uvicorn']}"
    )
    best, ratios = data["best_rps"], data["cpu_ratios"]
    print(
        f"{'server / middleware':<37}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}{'best':>8}{'vs bare':>9}"
        f"{'CPU µs/req':>12}{'bare/it':>9} {'[quartiles]':<16}{'user':>8}{'system':>8}"
    )
    for label, m in medians.items():
        kind = label.split(" ")[0]
        bare, bare_best = medians[f"{kind} bare"], best[f"{kind} bare"]
        ratio, q1, q3 = spread(ratios[label])
        print(
            f"{label:<37}{m['rps']:>8.0f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['rps'] / bare['rps']:>8.2f}x"
            f"{best[label]:>8.0f}{best[label] / bare_best:>8.2f}x"
            f"{m['cpu_us']:>12.1f}{ratio:>8.3f}x {f'[{q1:.3f} .. {q3:.3f}]':<16}{m['user_us']:>8.1f}{m['sys_us']:>8.1f}"
        )
    for kind in SERVERS:
        for name, rps in (
            ("median", {k: v["rps"] for k, v in medians.items()}),
            ("best", best),
        ):
            ours = rps[f"{kind} corrtrace"]
            line = f"{kind} ({name} req/s): corrtrace {ours / rps[f'{kind} bare']:.2f}x bare (target >= 0.95x)"
            peer = rps.get(f"{kind} asgi-correlation-id")
            if peer:
                line += f", {ours / peer:.2f}x asgi-correlation-id (target >= 1.0x)"
            print(line)
        ratio, q1, q3 = spread(ratios[f"{kind} corrtrace"])
        verdict = "met" if q1 >= 0.95 else "met by the median, not its lower quartile" if ratio >= 0.95 else "not met"
        line = f"{kind} (CPU per request): corrtrace {ratio:.3f}x bare [{q1:.3f} .. {q3:.3f}] (>= 0.95x: {verdict})"
        for peer, target in (("asgi-correlation-id", " (target >= 1.0x)"), ("server-log", "")):
            peer_label = f"{kind} {peer}"
            if peer_label in ratios:  # the two rows' ratios against the same bare run, round by round
                pairs = zip(ratios[f"{kind} corrtrace"], ratios[peer_label], strict=True)
                ratio, q1, q3 = spread([ours / theirs for ours, theirs in pairs])
                line += f", {ratio:.3f}x {PEER_NAMES.get(peer, peer)} [{q1:.3f} .. {q3:.3f}]{target}"
        print(line)
    for label, count in data["access_lines"].items():
        print(f"{label}: {count} access lines written to its log file")


# --- --callgrind: instructions per request of a real worker, independent of the machine's load -------------------

CALLGRIND_VARIANTS = ("bare", "server-log", "corrtrace", "corrtrace-no-echo")
CALLGRIND_TIMEOUT = 900.0  # seconds for a server to start (imports under valgrind) and to exit


@functools.cache
def _fixed_layout() -> tuple[str, ...]:
    """``setarch <machine> -R``, which runs a command with address-space randomisation off, when this machine allows
    it, else nothing. With one layout every run places the objects alike (which set and dict slots collide, what the
    allocator reuses), so two runs of one variant count the same to ~0.4k instructions per request instead of
    ~1.2k (measured 2026-12-01: uvicorn bare 866.7k / 865.5k randomised, 867.2k / 866.8k fixed)."""
    command = ("setarch", os.uname().machine, "-R")
    try:
        subprocess.run([*command, "true"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ()
    return command


class _Client:
    """wrk's request (``GET /``, ``Host`` only), one at a time on a kept-alive connection; a new connection when
    the server closes it (gunicorn's sync worker answers ``Connection: close``)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def get(self) -> None:
        for attempt in range(2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=CALLGRIND_TIMEOUT)
                self.buffer = b""
            try:
                self.sock.sendall(self.request)
                status, close = self._response()
            except ConnectionError:  # the server closed a kept-alive connection first: once more on a new one
                self.close()
                if attempt:
                    raise
                continue
            if close:
                self.close()
            if status != 200:
                raise RuntimeError(f"GET / answered {status}")
            return

    def _read(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("closed by the server")
        self.buffer += data

    def _response(self) -> tuple[int, bool]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        self.buffer = self.buffer[length:]
        return int(lines[0].split()[1]), headers.get("connection") == "close"

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def callgrind_total(kind: str, variant: str, requests: int, workdir: Path) -> int:
    """Instructions the server's worker process executed, under ``valgrind --tool=callgrind``, from its start to its
    exit after ``requests`` requests (``PYTHONHASHSEED=0``; ``_load_apps.py`` holds the wall clock ``time.time_ns``
    at one instant, so each request is not the first of a new millisecond as valgrind's slowdown would make it, and
    slows uvicorn's 0.1 s housekeeping tick, whose count per request would follow valgrind's speed)."""
    name = f"{kind}-{variant}-{requests}"
    out = workdir / f"{name}.callgrind"
    server = start(
        kind,
        variant,
        workdir,
        0,
        prefix=(*_fixed_layout(), "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", sys.executable),
        extra_args=("--timeout", str(int(CALLGRIND_TIMEOUT))) if kind == "gunicorn+flask" else (),
        env={"PYTHONHASHSEED": "0", "CORRTRACE_LOAD_CALLGRIND": "1"},
        timeout=CALLGRIND_TIMEOUT,
        name=name,
    )
    try:
        client = _Client(server.port)
        for _ in range(requests):
            client.get()
        client.close()
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=CALLGRIND_TIMEOUT)
    files = {int(path.suffix[1:]): path for path in workdir.glob(f"{name}.callgrind.*")}
    workers = [path for pid, path in files.items() if pid != server.proc.pid] or list(files.values())
    if len(workers) != 1:  # gunicorn: the master and its one worker; uvicorn: one process
        raise RuntimeError(f"{name}: expected one worker's callgrind file, found {sorted(files)}")
    match = re.search(rb"^(?:summary|totals):\s+(\d+)", workers[0].read_bytes(), re.M)
    if match is None:
        raise RuntimeError(f"{name}: no instruction total in {workers[0]}")
    return int(match.group(1))


def run_callgrind(requests: int, warmup: int, jobs: int) -> dict[str, Any]:
    """Per server and variant: (total at ``warmup + 2 * requests`` - total at ``warmup + requests``) / ``requests``,
    the instructions of one request with the start-up, the warm-up and the exit cancelled out."""
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("valgrind") is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "lib" / "apt-install.sh"), "valgrind"], check=True)
    counts = {warmup + requests, warmup + 2 * requests}
    tasks = [(kind, variant, n) for kind in SERVERS for variant in CALLGRIND_VARIANTS for n in sorted(counts)]
    with tempfile.TemporaryDirectory(prefix="corrtrace-callgrind-") as tmp, ThreadPoolExecutor(jobs) as pool:
        totals = dict(zip(tasks, pool.map(lambda task: callgrind_total(*task, Path(tmp)), tasks), strict=True))
    per_request = {
        f"{kind} {variant}": (totals[kind, variant, warmup + 2 * requests] - totals[kind, variant, warmup + requests])
        / requests
        for kind in SERVERS
        for variant in CALLGRIND_VARIANTS
    }
    return {
        "requests": requests,
        "uvicorn": uvicorn_stack(),
        "fixed_layout": bool(_fixed_layout()),
        "warmup": warmup,
        "instructions_per_request": per_request,
        "totals": {f"{kind} {variant} {n}": total for (kind, variant, n), total in totals.items()},
    }


def report_callgrind(data: dict[str, Any]) -> None:
    per = data["instructions_per_request"]
    print(
        f"callgrind, instructions per request of the server's worker: (run of {data['warmup']} + "
        f"{2 * data['requests']} requests - run of {data['warmup']} + {data['requests']}) / {data['requests']}; "
        f"one wrk-like GET / at a time, uvicorn on {data['uvicorn']}, PYTHONHASHSEED=0, address randomisation "
        f"{'off' if data['fixed_layout'] else 'on (setarch -R refused here)'}, the wall clock held (time.time_ns), "
        "uvicorn's tick slowed"
    )
    for kind in SERVERS:
        bare, ours, logged = per[f"{kind} bare"], per[f"{kind} corrtrace"], per[f"{kind} server-log"]
        print(
            f"{kind:<16} bare {bare / 1000:8.1f}k  corrtrace {ours / 1000:8.1f}k  overhead {(ours - bare) / 1000:6.1f}k"
            f"  bare/corrtrace {bare / ours:.3f}x (>= 0.95x: {'met' if bare / ours >= 0.95 else 'not met'})"
            f"; with the server's own access log {logged / 1000:8.1f}k (overhead {(logged - bare) / 1000:6.1f}k),"
            f" that/corrtrace {logged / ours:.3f}x"
        )
        silent = per[f"{kind} corrtrace-no-echo"]
        print(
            f"{'':<16} without the ID in the response (echo_header=False) {silent / 1000:8.1f}k: the one response"
            f" header costs {(ours - silent) / 1000:5.1f}k of the overhead (the middleware's copy of the headers and"
            f" the server's checks and writing of one more header), the rest {(silent - bare) / 1000:5.1f}k"
            f" (bare/that {bare / silent:.3f}x)"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--base-port", type=int, default=0, help="first loopback port to try (0: any free one)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="instead of wrk: count the instructions per request of each server's worker under callgrind",
    )
    parser.add_argument("--requests", type=int, default=500, help="--callgrind: N (runs of N and 2N requests)")
    parser.add_argument("--warmup", type=int, default=200, help="--callgrind: requests before the N")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="--callgrind: servers at once")
    args = parser.parse_args(argv)
    if args.callgrind:
        data = run_callgrind(args.requests, args.warmup, args.jobs)
        print(json.dumps(data, indent=2)) if args.json else report_callgrind(data)
        return 0
    data = run(args.duration, args.rounds, args.connections, args.base_port)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        report(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Start, watch and stop the demo's child processes (moto, the manager, the services, the pipeline).

Children run in their own session, so a Ctrl-C in the terminal reaches only the runner, which then stops
each child it started (SIGTERM, then SIGKILL after a grace period) by its own process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are picked (one at a time, the kernel
    can hand out the port it just freed again)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def exit_with_parent() -> None:
    """In a child: stop when the runner is gone (killed without a chance to stop us), checked every second."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class ChildFailed(RuntimeError):
    """A child process exited or never became healthy; the message quotes the end of its stderr."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    stderr_path: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Supervisor:
    """Owns every process the demo starts; ``stop_all`` ends exactly those."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Child:
        stderr_path = self.workdir / "logs" / f"{name}.stderr"
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        with open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        child = Child(name, process, stderr_path)
        self.children.append(child)
        return child

    def start_service(self, name: str, env: Mapping[str, str]) -> Child:
        return self.start(name, [sys.executable, "-m", "corrtrace.demo.serve", name], env)

    def wait_healthy(self, child: Child, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise ChildFailed(f"{child.name} exited with {child.process.returncode}:\n{child.tail()}")
            try:
                if httpx.get(url, timeout=2.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        raise ChildFailed(f"{child.name} did not answer {url} within {timeout:.0f} s:\n{child.tail()}")

    def stop_child(self, name: str, grace: float = 5.0) -> None:
        """Stop one child (SIGTERM, SIGKILL after ``grace``) and forget it: the demo's manager-outage fault."""
        for child in [c for c in self.children if c.name == name]:
            self.children.remove(child)
            child.process.terminate()
            try:
                child.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout=5)

    def check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                raise ChildFailed(f"{child.name} stopped unexpectedly ({child.process.returncode}):\n{child.tail()}")

    def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM every child (services first, moto last), wait, SIGKILL what is left."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                try:
                    os.kill(child.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            remaining = max(0.0, deadline - time.monotonic())
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout=5)
        self.children.clear()

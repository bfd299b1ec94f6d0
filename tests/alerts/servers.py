"""Real uvicorn servers on loopback for the alerts tests (the receiver, the end-to-end mesh)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


def start_uvicorn(app: Any, port: int, **config: Any) -> tuple[uvicorn.Server, threading.Thread]:
    """Run ``app`` on 127.0.0.1:``port`` in a daemon thread; return once it accepts connections.

    Stop it with ``server.should_exit = True`` (and join the thread when the test must wait for it).
    """
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    return server, thread

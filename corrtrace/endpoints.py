"""Where the local backends listen: one variable set per backend, the URL following the port.

``scripts/services`` starts each backend on ``127.0.0.1:$<NAME>_PORT``; the tests, the benchmarks, the demo and
``corrtrace dashboards build`` read ``$<NAME>_URL``. So that a port moved for the scripts (``ES_PORT=9210``) moves
everything else too, ``$<NAME>_URL`` when set wins, else the URL is built from ``$<NAME>_PORT``, else the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_PORTS = {"ES": 9200, "OS": 9201, "MOTO": 5000}


def backend_url(name: str, env: Mapping[str, str] | None = None) -> str:
    """``$ES_URL``, else ``http://127.0.0.1:$ES_PORT``, else the default port (``name`` is ES, OS or MOTO)."""
    env = os.environ if env is None else env
    url = env.get(f"{name}_URL")
    if url:
        return url.rstrip("/")
    port = env.get(f"{name}_PORT") or DEFAULT_PORTS[name]
    return f"http://127.0.0.1:{port}"

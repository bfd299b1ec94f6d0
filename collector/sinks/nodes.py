"""Several Elasticsearch/OpenSearch nodes behind one client: fail over to the next node at once, and say once
which node was lost and once when it is back (see collector/README.md, "A cluster of nodes").

The clients' own node pools already take a failed node out of rotation for a while; these subclasses only
replace their per-failure warnings ("has failed for 7 times in a row") with one line per loss.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from elastic_transport import NodePool

log = logging.getLogger("corrtrace.collector.elasticsearch")
_CLIENT_LOGGERS = ("elastic_transport.node_pool", "elastic_transport.transport", "opensearch")


class _LossReporter:
    """Remembers which node URLs are lost, so each loss and each return is logged once."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.lost: set[str] = set()
        self.lock = threading.Lock()

    def dead(self, url: str) -> None:
        with self.lock:
            if url in self.lost:
                return
            self.lost.add(url)
            left = self.total - len(self.lost)
        log.warning("lost search node %s; shipping to the other %d node(s)", url, left)

    def live(self, url: str) -> None:
        if url not in self.lost:  # the common case: one set lookup per successful request
            return
        with self.lock:
            if url not in self.lost:
                return
            self.lost.discard(url)
        log.warning("search node %s is back; shipping to it again", url)


class ReportingNodePool(NodePool):
    """elasticsearch-py's node pool, logging each lost node once."""

    def __init__(self, node_configs: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(node_configs, *args, **kwargs)
        self.reporter = _LossReporter(len(node_configs))

    def mark_dead(self, node: Any, _now: float | None = None) -> None:
        super().mark_dead(node, _now)
        self.reporter.dead(node.base_url)

    def mark_live(self, node: Any) -> None:
        super().mark_live(node)
        self.reporter.live(node.base_url)


def reporting_connection_pool() -> type:
    """opensearch-py's connection pool, logging each lost node once (built lazily: opensearch-py is optional)."""
    from opensearchpy import ConnectionPool

    class ReportingConnectionPool(ConnectionPool):  # type: ignore[misc]
        def __init__(self, connections: Any, **kwargs: Any) -> None:
            super().__init__(connections, **kwargs)
            self.reporter = _LossReporter(len(connections))

        def mark_dead(self, connection: Any, now: float | None = None) -> None:
            super().mark_dead(connection, now)
            self.reporter.dead(connection.host)

        def mark_live(self, connection: Any) -> None:
            super().mark_live(connection)
            self.reporter.live(connection.host)

    return ReportingConnectionPool


def quiet_client_logs() -> None:
    """The pools above say what matters; the clients' own per-request warnings would repeat it each retry."""
    for name in _CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)

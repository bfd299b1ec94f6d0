"""The demo's collector process: corrtrace.collector's pipeline tailing every log file of the mesh into the
log store (the embedded store, or Elasticsearch).

It serves ``/status``: how far each file is shipped (acknowledged offsets, which the runner waits for).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from corrtrace.demo.logstore import make_sink
from corrtrace.demo.runtime import Runtime
from corrtrace.demo.status import serve_status

log = logging.getLogger("demo.pipeline")


class DemoPipeline:
    def __init__(self, rt: Runtime) -> None:
        from corrtrace.collector import FileTail, Pipeline
        from corrtrace.collector.parsers import build_format

        mesh = rt.mesh
        self.sink = make_sink(mesh)
        self.pipeline = Pipeline([], [self.sink], data_dir=mesh.collector_dir, flush_interval=0.1, idle_sleep=0.02)
        pattern = str(mesh.log_path("ui").parent / "*.log")
        self.pipeline.sources.append(FileTail([pattern], self.pipeline.checkpoint, scan_interval=0.1))
        if "nginx" in mesh.ports:  # --with-nginx: the edge's access log, in corrtrace's nginx format
            edge = FileTail([str(mesh.nginx_access_log)], self.pipeline.checkpoint, scan_interval=0.1)
            edge.fmt = build_format("nginx", service="nginx")  # type: ignore[attr-defined]
            self.pipeline.sources.append(edge)

    def status(self) -> dict[str, Any]:
        offsets = {
            str(entry["path"]): int(entry["offset"])
            for entry in self.pipeline.checkpoint.snapshot().values()
            if entry.get("path")
        }
        return {"offsets": offsets, "shipped": self.pipeline.stats.read}


def serve(rt: Runtime, stop: threading.Event) -> None:
    demo = DemoPipeline(rt)

    server = serve_status(rt.mesh.ports["pipeline"], lambda: {"service": "pipeline", "ok": True, **demo.status()})
    demo.pipeline.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        demo.pipeline.stop(drain_timeout=3)
        demo.sink.close()

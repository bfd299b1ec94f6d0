"""The demo's log store: the collector's embedded store by default, the real Elasticsearch node on request.

Search goes through the collector's public ``search_events`` (what ``corrtrace search`` uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corrtrace.demo.settings import Mesh


def make_sink(mesh: Mesh) -> Any:
    """The sink the pipeline ships to (and searches): Elasticsearch when the mesh has a URL, else embedded."""
    from corrtrace.collector import ElasticsearchSink, EmbeddedStore, connect

    if mesh.elasticsearch_url:
        return ElasticsearchSink(connect(mesh.elasticsearch_url), prefix=mesh.index_prefix)
    return EmbeddedStore(mesh.store_path)


def search(mesh: Mesh, correlation_id: str) -> list[dict[str, Any]]:
    """Every line of one request, oldest first."""
    from corrtrace.collector import connect, search_events

    if mesh.elasticsearch_url:  # make the last second of lines searchable (the index refreshes every second)
        client = connect(mesh.elasticsearch_url)
        client.options(ignore_status=404).indices.refresh(index=f"{mesh.index_prefix}-*")
        client.close()
    backend = make_sink(mesh)
    try:
        return list(search_events(correlation_id, backend=backend))
    finally:
        backend.close()


def write_dashboards(mesh: Mesh) -> list[str]:
    """Write the Grafana dashboards (and provisioning files) pointed at this mesh's Elasticsearch index."""
    try:
        from corrtrace.dashboards import DashboardsSettings, write_all
    except ImportError:  # the dashboards part is optional for the demo
        return []
    settings = DashboardsSettings(index_pattern=f"{mesh.index_prefix}-*")
    if mesh.elasticsearch_url:
        settings.es_url = mesh.elasticsearch_url
    return [str(p) for p in write_all(Path(mesh.workdir) / "dashboards", settings)]

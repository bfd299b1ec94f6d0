"""The transaction manager of the demo mesh: corrtrace.txmanager's app, its state table on the mesh's second
moto, with demo-speed retry settings (participants are local, so backoff starts at 50 ms), and its failure
channel (a DynamoDB table with a stream) on the services' moto, where the services report business failures."""

from __future__ import annotations

from typing import Any

from corrtrace.demo.runtime import Runtime
from corrtrace.demo.settings import Mesh


def manager_settings(mesh: Mesh, secret: str | None = None) -> Any:
    """The manager's settings, shared by the manager, the failure follower and the services that report."""
    from corrtrace.txmanager.settings import TxManagerSettings

    return TxManagerSettings(
        table_name=mesh.txmanager_table,
        dynamodb_endpoint=mesh.txmanager_moto_url or mesh.moto_url,
        region=mesh.region,
        secret=secret,
        max_attempts=6,
        backoff_initial=0.05,
        backoff_max=1.0,
        participant_timeout=10.0,
        poll_interval=0.05,
        resume_interval=2.0,
        service_urls={name: mesh.url(name) for name in ("catalog", "checkout", "payment")},
        host="127.0.0.1",
        port=mesh.ports["txmanager"],
        failure_target=mesh.failure_table,
        failure_dlq=mesh.failure_dlq,
        failure_endpoint=mesh.moto_url,
    )


def build(rt: Runtime) -> Any:
    from corrtrace.txmanager import create_app
    from corrtrace.txmanager.store import Store

    settings = manager_settings(rt.mesh, rt.secret)
    Store(settings).create_table()
    return create_app(settings)

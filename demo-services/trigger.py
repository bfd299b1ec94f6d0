"""The demo's failure trigger: ``corrtrace.txmanager``'s trigger fed by a local DynamoDB-Streams mapping on the
failure table (what Lambda does in AWS). Its own process, so that a stopped manager leaves it running: the
failure records written meanwhile wait in the stream and are retried until the manager is back."""

from __future__ import annotations

import threading

from corrtrace.demo.manager import manager_settings
from corrtrace.demo.runtime import Runtime
from corrtrace.demo.status import run_poller


def serve(rt: Runtime, stop: threading.Event) -> None:
    from corrtrace.txmanager.follow import build_follower, poller_settings

    settings = manager_settings(rt.mesh, rt.secret)
    # 4 lanes: records of different requests are handed to the manager in parallel (one request stays in order)
    lanes = poller_settings(retry_delay=0.1, max_retry_delay=1.0, poll_interval=0.1, parallelization_factor=4)
    follower = build_follower(settings, poller=lanes)
    run_poller("trigger", rt.mesh.ports["trigger"], follower, stop)

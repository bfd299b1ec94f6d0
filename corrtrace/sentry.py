"""Sentry: every event captured under a correlation ID carries it as the tag ``correlation_id``.

One global event processor reads the ID bound by whichever adapter runs (ASGI, WSGI, Django, Celery, Lambda),
so no adapter needs Sentry-specific code. Set up with
``sentry_sdk.init(..., integrations=[CorrelationIdIntegration()])`` (see middleware/README.md, "Sentry").
"""

from __future__ import annotations

from typing import Any

from sentry_sdk.integrations import Integration
from sentry_sdk.scope import add_global_event_processor

from corrtrace.context import get_correlation_id

TAG = "correlation_id"


def tag_event(event: dict[str, Any], hint: Any) -> dict[str, Any]:
    """Add the bound ID as a tag; a tag the code set itself wins, and events outside a request are untouched."""
    correlation_id = get_correlation_id()
    if correlation_id is not None:
        tags = event.get("tags")
        if not isinstance(tags, dict):
            event["tags"] = {TAG: correlation_id}
        elif TAG not in tags:
            tags[TAG] = correlation_id
    return event


class CorrelationIdIntegration(Integration):
    """The Sentry integration that installs :func:`tag_event` once per process."""

    identifier = "corrtrace"

    @staticmethod
    def setup_once() -> None:
        add_global_event_processor(tag_event)  # type: ignore[arg-type]

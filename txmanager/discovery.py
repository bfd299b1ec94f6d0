"""Find the participants of a transaction nobody registered for: the services that logged lines for its
correlation ID, in the order they first did, mapped to base URLs by ``settings.service_urls``.

A service that logged but has no URL in the map cannot be called; it is reported (logged) and left out, so an
operator can add it and trigger again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from corrtrace.txmanager import eventlog
from corrtrace.txmanager.settings import TxManagerSettings

SearchFn = Callable[[str], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True)
class DiscoveredParticipant:
    service: str
    rollback_url: str
    commit_url: str | None


Discover = Callable[[str], list[DiscoveredParticipant]]


def _field(event: Mapping[str, Any], dotted: str) -> Any:
    """Read ``a.b.c`` from a nested ECS event, or from a flat one that kept dotted keys."""
    if dotted in event:
        return event[dotted]
    node: Any = event
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


class LogDiscovery:
    """``discover(correlation_id)`` from a log search function returning that ID's events."""

    def __init__(
        self,
        search: SearchFn,
        service_urls: Mapping[str, str],
        *,
        rollback_path: str = "/corrtrace/rollback/{id}",
        commit_path: str | None = "/corrtrace/commit/{id}",
        exclude: Iterable[str] = ("txmanager",),
    ) -> None:
        self.search = search
        self.service_urls = dict(service_urls)
        self.rollback_path = rollback_path
        self.commit_path = commit_path
        self.exclude = set(exclude)

    def services(self, correlation_id: str) -> list[str]:
        """Services that logged for this ID, by the time of their first line."""
        first: dict[str, tuple[str, int]] = {}
        for position, event in enumerate(self.search(correlation_id)):
            if _field(event, "correlation_id") not in (None, correlation_id):
                continue
            name = _field(event, "service.name")
            if not isinstance(name, str) or not name or name in self.exclude:
                continue
            seen = (str(_field(event, "@timestamp") or ""), position)  # ties: the store's order
            if name not in first or seen < first[name]:
                first[name] = seen
        return sorted(first, key=first.__getitem__)

    def __call__(self, correlation_id: str) -> list[DiscoveredParticipant]:
        found: list[DiscoveredParticipant] = []
        unknown: list[str] = []
        for service in self.services(correlation_id):
            base = self.service_urls.get(service)
            if base is None:
                unknown.append(service)
                continue
            base = base.rstrip("/")
            commit = base + self.commit_path if self.commit_path else None
            found.append(DiscoveredParticipant(service, base + self.rollback_path, commit))
        if unknown:
            eventlog.note(
                correlation_id,
                f"services without a URL in txmanager.service_urls cannot be rolled back: {', '.join(unknown)}",
                level=logging.WARNING,
                unmapped=",".join(unknown),
            )
        return found


def collector_search(backend: Any, *, index_prefix: str | None = None) -> SearchFn:
    """A search function over the collector's log store (imported lazily: the collector is optional).

    ``backend`` is what ``corrtrace.collector.search_events`` takes (an Elasticsearch client, a sink, a path to
    the embedded store) or an ``http(s)://`` URL of Elasticsearch, connected on first use.
    """
    resolved: list[Any] = []

    def search(correlation_id: str) -> list[Mapping[str, Any]]:
        try:
            from corrtrace.collector import search_events
        except ImportError:
            eventlog.note(correlation_id, "discovery needs corrtrace.collector.search_events", level=logging.WARNING)
            return []
        if not resolved:
            target = backend
            if isinstance(backend, str) and backend.startswith(("http://", "https://")):
                from corrtrace.collector import connect

                target = connect(backend)
            resolved.append(target)
        found = search_events(correlation_id, backend=resolved[0], index_prefix=index_prefix)
        if not found.complete:
            eventlog.note(
                correlation_id,
                f"discovery read the first {len(found):,} lines of this request only: a service that logged only "
                "after them is not found",
                level=logging.WARNING,
            )
        return list(found)

    return search


def default_discover(settings: TxManagerSettings) -> Discover | None:
    """Discovery from the collector's store when ``service_urls`` and ``discovery_backend`` are configured."""
    if not settings.service_urls or not settings.discovery_backend:
        return None
    return LogDiscovery(
        collector_search(settings.discovery_backend, index_prefix=settings.discovery_index_prefix),
        settings.service_urls,
        rollback_path=settings.rollback_path,
        commit_path=settings.commit_path,
        exclude=(settings.service_name,),
    )

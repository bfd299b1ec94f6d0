"""Views that log, answer with the ID they saw, or raise."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse

from corrtrace.context import get_correlation_id

log = logging.getLogger("shop.views")


def hello(request: HttpRequest) -> HttpResponse:
    log.info("hello view")
    return JsonResponse({"request": request.correlation_id, "bound": get_correlation_id()})  # type: ignore[attr-defined]


async def async_hello(request: HttpRequest) -> HttpResponse:
    log.info("async hello view")
    return JsonResponse({"request": request.correlation_id, "bound": get_correlation_id()})  # type: ignore[attr-defined]


def boom(request: HttpRequest) -> HttpResponse:
    log.info("about to fail")
    raise RuntimeError("view failed")

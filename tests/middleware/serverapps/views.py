"""The two views every test server serves, registered by the FastAPI and the Flask app alike."""

from __future__ import annotations

import logging

import corrtrace


def ok() -> dict[str, str | None]:
    logging.getLogger("app").info("ok view")
    return {"bound": corrtrace.get_correlation_id()}


def boom() -> None:
    raise ZeroDivisionError("boom view failed")

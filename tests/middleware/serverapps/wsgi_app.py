"""A Flask app as users write it (``configure`` called at import), run by real gunicorn sync workers."""

from __future__ import annotations

import logging

from corrtrace.middleware import WSGICorrelationIdMiddleware
from flask import Flask

import corrtrace
import corrtrace.logging

corrtrace.logging.configure("flask-srv")

app = Flask(__name__)
app.wsgi_app = WSGICorrelationIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]


@app.get("/ok")
def ok() -> dict[str, str | None]:
    logging.getLogger("app").info("ok view")
    return {"bound": corrtrace.get_correlation_id()}


@app.get("/boom")
def boom() -> None:
    raise ZeroDivisionError("boom view failed")

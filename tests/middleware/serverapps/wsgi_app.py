"""A Flask app as users write it (``configure`` called at import), run by real gunicorn sync workers."""

from __future__ import annotations

from corrtrace.middleware import WSGICorrelationIdMiddleware
from flask import Flask

import corrtrace.logging

from .views import boom, ok

corrtrace.logging.configure("flask-srv")

app = Flask(__name__)
app.wsgi_app = WSGICorrelationIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
app.get("/ok")(ok)
app.get("/boom")(boom)

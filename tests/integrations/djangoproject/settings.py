"""Settings of the small Django project the Django tests run (test client, gunicorn WSGI, uvicorn ASGI).

The corrtrace part is the README's Django section, executed here as written (tests/integrations/readme.py).
"""

from __future__ import annotations

from tests.integrations.readme import snippet

SECRET_KEY = "corrtrace-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.integrations.djangoproject.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, object] = {}
USE_TZ = True

MIDDLEWARE: list[str] = []
exec(snippet("Django"), globals())  # MIDDLEWARE, CORRTRACE and LOGGING from middleware/README.md

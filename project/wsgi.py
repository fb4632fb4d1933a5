"""The WSGI application: Django, with the lean path for the views marked lean (project/lean.py)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.local")
# Web requests only (see DB_STATEMENT_TIMEOUT_MS in settings): lookups take milliseconds, pages well under this.
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "10000")

from project.lean import get_wsgi_application

application = get_wsgi_application()

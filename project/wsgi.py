"""The WSGI application: Django, with the lean path for the views marked lean (project/lean.py)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.local")

from project.lean import get_wsgi_application

# Web requests only (see DB_STATEMENT_TIMEOUT_MS in settings): lookups take milliseconds, pages well under this. In
# the environment only while the settings load: a process this one starts (a test's worker) must not inherit it.
_timeout_set_here = "DB_STATEMENT_TIMEOUT_MS" not in os.environ
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "10000")
try:
    application = get_wsgi_application()
finally:
    if _timeout_set_here:
        del os.environ["DB_STATEMENT_TIMEOUT_MS"]

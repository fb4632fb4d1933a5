"""The WSGI application: Django, with the lean path for `settings.LEAN_PATHS` (project/lean.py)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.local")

from project.lean import get_wsgi_application

application = get_wsgi_application()

"""The Celery app: broker, queues and schedule. Domain tasks live in each app's `tasks.py`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.local")

app = Celery("servicearea")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Queues: `index` carries per-area builds (many, short); `maintenance` carries Redis rebuilds and the sweep, so
# a long rebuild never waits behind a burst of edits, nor the other way round.
app.conf.task_routes = {
    "hexindex.index_area": {"queue": "index"},
    "hexindex.refresh_areas": {"queue": "index"},
    "hexindex.rebuild_redis": {"queue": "maintenance"},
    "hexindex.sweep": {"queue": "maintenance"},
}
app.conf.beat_schedule = {
    "sweep-index": {"task": "hexindex.sweep", "schedule": 60.0},
}

"""The Celery app: broker, queues and schedule. Domain tasks live in each app's `tasks.py`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.local")

app = Celery("servicearea")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

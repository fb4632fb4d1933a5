"""Where local receivers are allowed: on by default under `make run` (project.settings.local) so a newcomer can point
a webhook at a receiver on their machine, off by default elsewhere, and refused outright by the production settings;
and which queue webhook tasks go to."""

import os
import subprocess
import sys

import redis
from django.conf import settings

from webhooks import tasks
from worker.celery import app, publish_queue_depth

PRODUCTION = {"DJANGO_SECRET_KEY": "x" * 64, "DJANGO_ALLOWED_HOSTS": "api.example.com"}


def load_settings(module: str, name: str, **env) -> subprocess.CompletedProcess:
    """Import a settings module in a fresh interpreter with exactly this environment (plus PATH); prints `name`."""
    code = f"import importlib; print(getattr(importlib.import_module({module!r}), {name!r}))"
    clean = {"PATH": os.environ["PATH"], "DJANGO_READ_DOT_ENV": "false", **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=clean, capture_output=True, text=True
    )


def settings_value(module: str, name: str, **env) -> str:
    loaded = load_settings(module, name, **env)
    assert loaded.returncode == 0, loaded.stderr
    return loaded.stdout.strip()


def test_local_receivers_are_allowed_under_make_run_and_nowhere_else_by_default():
    assert settings_value("project.settings.local", "WEBHOOKS_ALLOW_LOCAL") == "True"
    assert settings_value("project.settings.local", "WEBHOOKS_ALLOW_LOCAL", WEBHOOKS_ALLOW_LOCAL="false") == "False"
    assert settings_value("project.settings.base", "WEBHOOKS_ALLOW_LOCAL") == "False"


def test_production_settings_refuse_local_receivers():
    refused = load_settings(
        "project.settings.production", "WEBHOOKS_ALLOW_LOCAL", **PRODUCTION, WEBHOOKS_ALLOW_LOCAL="1"
    )
    assert refused.returncode != 0
    assert "ImproperlyConfigured: WEBHOOKS_ALLOW_LOCAL must not be set in production" in refused.stderr
    assert settings_value("project.settings.production", "WEBHOOKS_ALLOW_LOCAL", **PRODUCTION) == "False"


def test_webhook_tasks_wait_on_their_own_queue_whose_depth_is_published():
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    try:
        for task, args in ((tasks.deliver, [1]), (tasks.ping, [1]), (tasks.dispatch, []), (tasks.prune_deliveries, [])):
            task.delay(*args)  # published, never consumed here
        assert (broker.llen("webhooks"), broker.llen("maintenance"), broker.llen("index")) == (4, 0, 0)
        assert publish_queue_depth()["webhooks"] == 4
    finally:
        app.conf.task_always_eager = eager
        broker.flushdb()

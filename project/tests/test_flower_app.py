"""Flower runs its own Celery app (worker/flower.py): the broker URL and its basic auth are all it needs, not the
Django secret key nor the database credentials, and it reaches the same broker and queues as the workers."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode

import pytest
from django.conf import settings

from testing.net import free_port
from worker import flower
from worker.celery import QUEUES, app

BARE = {"PATH": os.environ["PATH"], "DJANGO_READ_DOT_ENV": "false"}


def _settings_broker_url(**env) -> str:
    """CELERY_BROKER_URL as project/settings/base.py composes it from exactly this environment."""
    code = "import project.settings.base as s; print(s.CELERY_BROKER_URL)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=BARE | env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_URL": "redis://:pw@127.0.0.1:6379"},
        {"REDIS_URL": "redis://cache.internal:6380/"},
        # As ECS injects them: the endpoint, TLS, and the AUTH token from Secrets Manager.
        {"REDIS_HOST": "cache.internal", "REDIS_PORT": "6380", "REDIS_PASSWORD": "t/k n", "REDIS_TLS": "true"},
        {"REDIS_HOST": "cache.internal", "REDIS_TLS": "false"},
        {"CELERY_BROKER_URL": "redis://broker.internal:6379/4", "REDIS_URL": "redis://other:6379"},
        {},
    ],
)
def test_flower_composes_the_broker_url_as_the_settings_do(env):
    assert flower.broker_url(env) == _settings_broker_url(**env)


def test_flower_watches_the_queues_the_workers_consume():
    assert flower.QUEUES == QUEUES
    assert set(flower.QUEUES) >= {route["queue"] for route in app.conf.task_routes.values()}
    assert flower.app.conf.task_default_queue == settings.CELERY_TASK_DEFAULT_QUEUE
    assert [queue.name for queue in flower.app.conf.task_queues] == list(QUEUES)


def test_importing_the_flower_app_leaves_tasks_to_the_workers_app():
    from celery import current_app

    assert flower.app is not app
    assert current_app._get_current_object() is app  # shared tasks and .delay() still go through Django's settings


def test_the_flower_app_loads_neither_django_settings_nor_the_project():
    code = (
        "import json, sys, worker.flower as f; "
        "f.app.loader.import_default_modules(); "  # as Flower starts: where Celery's Django fix-up loads Django
        "loaded = sorted(m for m in sys.modules if m.startswith(('project', 'django.conf'))); "
        "print(json.dumps([f.app.conf.broker_url, loaded]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=BARE | {"REDIS_URL": "redis://127.0.0.1:6379", "DJANGO_SETTINGS_MODULE": "project.settings.production"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["redis://127.0.0.1:6379/0", []]


def _get(url: str, *, auth: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", f"Basic {b64encode(auth.encode()).decode()}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_flower_serves_with_the_broker_url_and_its_password_alone(tmp_path):
    port = free_port()
    log = tmp_path / "flower.log"
    # What the ECS task gets, in its local form: the image's settings module, which demands DJANGO_SECRET_KEY, but
    # no DJANGO_SECRET_KEY, no DB_* and no .env file.
    env = BARE | {
        "DJANGO_SETTINGS_MODULE": "project.settings.production",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "FLOWER_BASIC_AUTH": "admin:flower-test-password",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.flower", "flower", "--address=127.0.0.1", f"--port={port}",
         "--url_prefix=flower"],
        cwd=settings.BASE_DIR, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/flower"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if _get(f"{base}/healthcheck")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert _get(f"{base}/")[0] == 401
        assert _get(f"{base}/", auth="admin:wrong")[0] == 401
        status, body = _get(f"{base}/api/queues/length", auth="admin:flower-test-password")
        assert status == 200
        assert {queue["name"] for queue in json.loads(body)["active_queues"]} == set(QUEUES)
    finally:
        process.terminate()
        process.wait(timeout=30)

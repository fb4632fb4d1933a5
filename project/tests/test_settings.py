"""Production settings come from the environment and refuse unsafe defaults."""

import os
import subprocess
import sys

from django.conf import settings

SECRET = "x" * 64


def load(module: str, **env) -> subprocess.CompletedProcess:
    """Import a settings module in a fresh interpreter with exactly this environment (plus PATH)."""
    code = (
        f"import importlib; m = importlib.import_module('{module}'); print(m.DATABASES['default']['HOST'], m.REDIS_URL)"
    )
    clean = {"PATH": os.environ["PATH"], "DJANGO_READ_DOT_ENV": "false", **env}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
    )


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = load("project.settings.production", DJANGO_ALLOWED_HOSTS="api.example.com", DATABASE_URL="postgis://a@b/c")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = load("project.settings.production", DJANGO_SECRET_KEY=SECRET, DATABASE_URL="postgis://a@b/c")
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS must list" in result.stderr


def test_connection_settings_compose_from_parts_as_container_platforms_inject_them():
    result = load(
        "project.settings.production",
        DJANGO_SECRET_KEY=SECRET,
        DJANGO_ALLOWED_HOSTS="api.example.com",
        DB_HOST="db.internal",
        DB_PASSWORD="p@ss",
        REDIS_HOST="cache.internal",
        REDIS_PASSWORD="t/k n",
        REDIS_TLS="true",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["db.internal", "rediss://:t%2Fk%20n@cache.internal:6379"]

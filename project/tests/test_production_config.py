"""Production configuration: the load balancer's probe, TLS to PostgreSQL, no default secrets, least privilege on
AWS, locked requirements."""

import json
import os
import re
import subprocess
import sys

import pytest
from cfnlint.decode import cfn_yaml
from django.conf import settings
from django.urls import reverse

from project.middleware import LIVENESS_PATH

PROBE_MIDDLEWARE = "project.middleware.LivenessProbeMiddleware"
TASK_IP = "10.0.3.7:8000"  # how the load balancer's health check names a task
SECRET = "x" * 64


def production_settings(*names: str, **env) -> subprocess.CompletedProcess:
    """Import the production settings in a fresh interpreter with exactly this environment (plus PATH); prints the
    named settings as JSON."""
    code = (
        "import json, importlib; m = importlib.import_module('project.settings.production'); "
        f"print(json.dumps({{n: getattr(m, n) for n in {list(names)!r}}}, default=str))"
    )
    base = {"DJANGO_SECRET_KEY": SECRET, "DJANGO_ALLOWED_HOSTS": "api.example.com"}
    clean = {"PATH": os.environ["PATH"], "DJANGO_READ_DOT_ENV": "false", **base, **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=clean, capture_output=True, text=True
    )


def loaded(*names: str, **env) -> dict:
    result = production_settings(*names, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def behind_load_balancer(settings):
    """Production's host and HTTPS settings, with its middleware order (the probe first)."""
    settings.ALLOWED_HOSTS = ["api.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^health/"]
    settings.MIDDLEWARE = [PROBE_MIDDLEWARE, *(m for m in settings.MIDDLEWARE if m != PROBE_MIDDLEWARE)]


# --- the load balancer's probe ------------------------------------------------------------------------------------


def test_liveness_probe_by_task_ip_is_answered(api, db, behind_load_balancer):
    response = api.get("/health/live/", HTTP_HOST=TASK_IP)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/health/", "/api/v1/lookup/?lat=1&lng=1", "/admin/", "/health/live/x"])
def test_other_paths_by_task_ip_are_refused(api, db, behind_load_balancer, path):
    assert api.get(path, HTTP_HOST=TASK_IP).status_code == 400


def test_liveness_probe_by_public_host_keeps_the_middleware(api, db, behind_load_balancer):
    response = api.get("/health/live/", HTTP_HOST="api.example.com")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"


def test_without_the_probe_middleware_the_task_ip_probe_is_refused(api, db, behind_load_balancer, settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != PROBE_MIDDLEWARE]
    assert api.get("/health/live/", HTTP_HOST=TASK_IP).status_code == 400


def test_probe_middleware_answers_the_routed_liveness_path():
    assert reverse("health-live") == LIVENESS_PATH


def test_production_answers_the_probe_before_any_host_check():
    middleware = loaded("MIDDLEWARE")["MIDDLEWARE"]
    assert middleware[0] == PROBE_MIDDLEWARE
    assert middleware.count(PROBE_MIDDLEWARE) == 1


# --- TLS to PostgreSQL ------------------------------------------------------------------------------------------


def test_remote_database_is_verified_against_the_rds_bundle_by_default():
    values = loaded("DATABASES", "RDS_CA_BUNDLE", DB_HOST="db.internal")
    options = values["DATABASES"]["default"]["OPTIONS"]
    assert options["sslmode"] == "verify-full"
    assert options["sslrootcert"] == values["RDS_CA_BUNDLE"]


def test_database_ca_bundle_comes_from_the_environment():
    values = loaded("DATABASES", DB_HOST="db.internal", DB_SSLROOTCERT="/run/ca.pem")
    assert values["DATABASES"]["default"]["OPTIONS"]["sslrootcert"] == "/run/ca.pem"


@pytest.mark.parametrize(
    "env",
    [
        {"DB_HOST": "db.internal", "DB_SSLMODE": "require"},
        {"DB_HOST": "db.internal", "DB_SSLMODE": "disable"},
        {"DATABASE_URL": "postgis://app:pw@db.internal:5432/servicearea?sslmode=prefer"},
    ],
)
def test_production_refuses_an_unverified_connection_to_a_remote_database(env):
    result = production_settings("DATABASES", **env)
    assert result.returncode != 0
    assert "DB_SSLMODE must be verify-full" in result.stderr


def test_production_refuses_verification_without_a_ca_bundle():
    result = production_settings("DATABASES", DB_HOST="db.internal", DB_SSLROOTCERT="")
    assert result.returncode != 0
    assert "DB_SSLROOTCERT must name the CA bundle" in result.stderr


def test_local_stack_without_tls_may_turn_database_tls_off():
    values = loaded("DATABASES", DB_HOST="postgis", DB_SSLMODE="disable", DJANGO_SECURE="false")
    assert values["DATABASES"]["default"]["OPTIONS"]["sslmode"] == "disable"


def test_database_on_this_machine_needs_no_tls():
    options = loaded("DATABASES", DB_HOST="127.0.0.1")["DATABASES"]["default"]["OPTIONS"]
    assert options["sslmode"] == "prefer"
    assert "sslrootcert" not in options


def test_image_holds_the_ca_bundle_where_production_looks_for_it():
    bundle = loaded("RDS_CA_BUNDLE")["RDS_CA_BUNDLE"]
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    assert re.search(rf"^ADD .*https://\S+\.pem {re.escape(bundle)}$", dockerfile, re.MULTILINE)


# --- no default secrets -----------------------------------------------------------------------------------------

SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY$")


def test_compose_requires_every_secret_and_defaults_none():
    compose = (settings.BASE_DIR / "docker-compose.yml").read_text()
    references = re.findall(r"\$\{(\w+)(:?[-?])?", compose)
    secrets = {name: operator for name, operator in references if SECRET_NAME.search(name)}
    assert {"DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "FLOWER_PASSWORD"} <= set(secrets)
    for name, operator in references:
        if SECRET_NAME.search(name):
            assert operator == ":?", f"${{{name}}} must be required (${{{name}:?message}}), not defaulted"


def test_compose_keeps_the_flower_password_off_the_command_line():
    compose = (settings.BASE_DIR / "docker-compose.yml").read_text()
    flower = compose[compose.index("\n  flower:") :]
    command = next(line for line in flower.splitlines() if line.strip().startswith("command:"))
    assert "FLOWER_PASSWORD" not in command
    assert "basic-auth" not in command


# --- AWS: the application's own database role ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    return cfn_yaml.load(str(settings.BASE_DIR / "ops" / "aws" / "servicearea.yaml"))["Resources"]


def _mentions_master_secret(resource) -> bool:
    return re.search(r"(?<!App)DatabaseSecret", json.dumps(resource, default=str)) is not None


def _container_secrets(task_definition) -> dict:
    (container,) = task_definition["Properties"]["ContainerDefinitions"]
    return {secret["Name"]: json.dumps(secret["ValueFrom"], default=str) for secret in container.get("Secrets", [])}


@pytest.mark.parametrize("task", ["WebTaskDefinition", "WorkerTaskDefinition", "BeatTaskDefinition"])
def test_services_log_in_to_postgres_as_the_application_role(stack, task):
    secrets = _container_secrets(stack[task])
    assert "${AppDatabaseSecret}:username::" in secrets["DB_USER"]
    assert "${AppDatabaseSecret}:password::" in secrets["DB_PASSWORD"]


def test_only_the_migrate_task_can_read_the_master_credentials(stack):
    readers = {name for name, resource in stack.items() if _mentions_master_secret(resource)}
    assert readers == {"Database", "MigrateExecutionRole", "MigrateTaskDefinition"}
    assert "DB_PASSWORD" not in _container_secrets(stack["FlowerTaskDefinition"])


def test_migrate_task_creates_the_application_role_before_migrating(stack):
    (container,) = stack["MigrateTaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert "python ops/aws/app_db_role.py && exec python manage.py migrate" in " ".join(container["Command"])
    secrets = _container_secrets(stack["MigrateTaskDefinition"])
    assert "${AppDatabaseSecret}:password::" in secrets["APP_DB_PASSWORD"]


@pytest.mark.parametrize("service", ["WebService", "WorkerService", "BeatService", "FlowerService"])
def test_services_start_only_after_the_database_set_up(stack, service):
    depends_on = stack[service]["DependsOn"]
    assert "DatabaseSetup" in ([depends_on] if isinstance(depends_on, str) else depends_on)


# --- locked requirements ------------------------------------------------------------------------------------------


def _pins(path) -> dict[str, str]:
    text = path.read_text()
    return {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+)", text, re.MULTILINE)
    }


@pytest.mark.parametrize("locked", ["requirements.txt", "requirements-dev.txt"])
def test_lock_files_pin_what_the_in_files_choose(locked):
    chosen = _pins(settings.BASE_DIR / "requirements.in") | (
        _pins(settings.BASE_DIR / "requirements-dev.in") if locked == "requirements-dev.txt" else {}
    )
    pinned = _pins(settings.BASE_DIR / locked)
    assert {name: pinned.get(name) for name in chosen} == chosen, "run `make lock`"


@pytest.mark.parametrize("locked", ["requirements.txt", "requirements-dev.txt"])
def test_every_locked_requirement_carries_hashes(locked):
    requirements = re.split(r"\n(?=[A-Za-z0-9])", (settings.BASE_DIR / locked).read_text())
    unhashed = [r.split()[0] for r in requirements if "==" in r.split()[0] and "--hash=sha256:" not in r]
    assert not unhashed

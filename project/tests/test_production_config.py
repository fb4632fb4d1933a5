"""Production configuration: the load balancer's probe, TLS to PostgreSQL, no default secrets, least privilege on
AWS, locked requirements."""

import ipaddress
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


# --- AWS: the admin and Flower are for operators' networks only -----------------------------------------------------

NO_VALUE = object()


@pytest.fixture(scope="module")
def template():
    return cfn_yaml.load(str(settings.BASE_DIR / "ops" / "aws" / "servicearea.yaml"))


def deployed(template, **parameters) -> dict:
    """The template's resources as CloudFormation would create them with these parameters (the rest at their
    defaults): conditions decided, resources whose condition is false left out, Fn::If, Fn::Split and the
    parameters' Refs resolved. Other Refs and functions are kept as they are."""
    values = {name: spec.get("Default") for name, spec in template["Parameters"].items()} | parameters

    def condition(node) -> bool:
        if isinstance(node, str):
            return condition(template["Conditions"][node])
        ((function, arguments),) = node.items()
        if function == "Fn::Not":
            return not condition(arguments[0])
        if function == "Fn::Equals":
            return resolve(arguments[0]) == resolve(arguments[1])
        raise AssertionError(f"condition function {function} is not modelled here")

    def resolve(node):
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, value),) = node.items()
                if key == "Ref" and value == "AWS::NoValue":
                    return NO_VALUE
                if key == "Ref" and value in values:
                    return values[value]
                if key == "Fn::If":
                    return resolve(value[1] if condition(value[0]) else value[2])
                if key == "Fn::Split":
                    return resolve(value[1]).split(value[0])
            resolved = {key: resolve(value) for key, value in node.items()}
            return {key: value for key, value in resolved.items() if value is not NO_VALUE}
        if isinstance(node, list):
            return [item for item in map(resolve, node) if item is not NO_VALUE]
        return node

    return {
        name: resolve(resource)
        for name, resource in template["Resources"].items()
        if "Condition" not in resource or condition(resource["Condition"])
    }


def _path_matches(pattern: str, path: str) -> bool:
    """An ALB path pattern: case-sensitive, * any characters, ? one."""
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), path) is not None


def _path_patterns(condition: dict) -> list[str]:
    return condition["PathPatternConfig"]["Values"] if "PathPatternConfig" in condition else condition["Values"]


def _rule_matches(conditions: list, *, path: str, source: str) -> bool:
    for condition in conditions:
        if condition["Field"] == "path-pattern":
            if not any(_path_matches(pattern, path) for pattern in _path_patterns(condition)):
                return False
        elif condition["Field"] == "source-ip":
            cidrs = condition["SourceIpConfig"]["Values"]
            if not any(ipaddress.ip_address(source) in ipaddress.ip_network(cidr) for cidr in cidrs):
                return False
        else:
            raise AssertionError(f"condition {condition['Field']} is not modelled here")
    return True


def routed(resources: dict, *, path: str, source: str) -> str:
    """Where the HTTPS listener sends a request: the target group's resource name, or the fixed response's status."""
    rules = sorted(
        (r["Properties"] for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"),
        key=lambda rule: rule["Priority"],
    )
    for rule in rules:
        assert rule["ListenerArn"] == {"Ref": "HttpsListener"}
        if _rule_matches(rule["Conditions"], path=path, source=source):
            (action,) = rule["Actions"]
            break
    else:
        (action,) = resources["HttpsListener"]["Properties"]["DefaultActions"]
    if action["Type"] == "forward":
        return action["TargetGroupArn"]["Ref"]
    return action["FixedResponseConfig"]["StatusCode"]


OPERATOR_PATHS = ["/admin/", "/admin/login/", "/admin", "/flower/", "/flower", "/flower/broker"]
OFFICE = "198.51.100.0/24,192.0.2.8/32"


def test_no_listener_rule_forwards_the_admin_or_flower_without_a_source_ip_condition(template):
    for networks in ("", OFFICE):
        for name, resource in deployed(template, AdminAllowedNetworks=networks).items():
            if resource["Type"] != "AWS::ElasticLoadBalancingV2::ListenerRule":
                continue
            rule = resource["Properties"]
            patterns = [p for c in rule["Conditions"] if c["Field"] == "path-pattern" for p in _path_patterns(c)]
            operator_paths = [path for path in OPERATOR_PATHS if any(_path_matches(p, path) for p in patterns)]
            if operator_paths and any(action["Type"] == "forward" for action in rule["Actions"]):
                sources = [c for c in rule["Conditions"] if c["Field"] == "source-ip"]
                assert sources == [{"Field": "source-ip", "SourceIpConfig": {"Values": OFFICE.split(",")}}], name


@pytest.mark.parametrize("networks", ["", OFFICE])
def test_each_listener_rule_has_a_priority_of_its_own(template, networks):
    resources = deployed(template, AdminAllowedNetworks=networks).values()
    priorities = [r["Properties"]["Priority"] for r in resources if r["Type"].endswith("::ListenerRule")]
    assert len(priorities) == len(set(priorities))


@pytest.mark.parametrize("path", OPERATOR_PATHS)
@pytest.mark.parametrize("source", ["203.0.113.9", "198.51.100.7", "192.0.2.8"])
def test_without_networks_the_load_balancer_closes_the_admin_and_flower_to_everyone(template, path, source):
    assert routed(deployed(template), path=path, source=source) == "404"


@pytest.mark.parametrize("path", OPERATOR_PATHS)
def test_the_admin_and_flower_answer_the_allowed_networks_only(template, path):
    resources = deployed(template, AdminAllowedNetworks=OFFICE)
    target = "FlowerTargetGroup" if path.startswith("/flower") else "WebTargetGroup"
    assert routed(resources, path=path, source="198.51.100.7") == target
    assert routed(resources, path=path, source="192.0.2.8") == target
    assert routed(resources, path=path, source="192.0.2.9") == "404"
    assert routed(resources, path=path, source="203.0.113.9") == "404"


@pytest.mark.parametrize("networks", ["", OFFICE])
@pytest.mark.parametrize("path", ["/api/v1/lookup/", "/health/live/", "/portal/", "/static/admin/css/base.css"])
def test_everything_else_still_reaches_the_web_tasks_from_anywhere(template, networks, path):
    assert (
        routed(deployed(template, AdminAllowedNetworks=networks), path=path, source="203.0.113.9") == "WebTargetGroup"
    )


def test_allowed_networks_are_up_to_four_ipv4_cidrs(template):
    pattern = template["Parameters"]["AdminAllowedNetworks"]["AllowedPattern"]
    for accepted in ["", "10.8.0.0/16", OFFICE, "10.0.0.0/8,10.1.0.0/16,10.2.0.0/16,10.3.0.0/16"]:
        assert re.fullmatch(pattern, accepted), accepted
    # A rule takes five condition values; the path pattern is one.
    for refused in ["10.0.0.0/8,10.1.0.0/16,10.2.0.0/16,10.3.0.0/16,10.4.0.0/16", "10.8.0.0/16, 10.9.0.0/16", "any"]:
        assert not re.fullmatch(pattern, refused), refused


def _environment(resources: dict, task: str) -> dict:
    (container,) = resources[task]["Properties"]["ContainerDefinitions"]
    return {variable["Name"]: variable["Value"] for variable in container.get("Environment", [])}


def test_the_web_tasks_switch_the_admin_off_without_networks_and_check_the_same_networks_with_them(template):
    # An empty DJANGO_ADMIN_ALLOWED_NETWORKS means "from anywhere" to the application (project/admin_access.py).
    closed = _environment(deployed(template), "WebTaskDefinition")
    assert closed["DJANGO_ADMIN_ENABLED"] == "false"
    assert "DJANGO_ADMIN_ALLOWED_NETWORKS" not in closed
    opened = _environment(deployed(template, AdminAllowedNetworks=OFFICE), "WebTaskDefinition")
    assert opened["DJANGO_ADMIN_ENABLED"] == "true"
    assert opened["DJANGO_ADMIN_ALLOWED_NETWORKS"] == OFFICE
    assert opened["TRUSTED_PROXY_COUNT"] == "1"  # the address the application checks is the one the ALB saw


def test_web_settings_read_the_networks_as_the_template_passes_them():
    values = loaded("ADMIN_ENABLED", "ADMIN_ALLOWED_NETWORKS", DJANGO_ADMIN_ALLOWED_NETWORKS=OFFICE)
    assert values == {"ADMIN_ENABLED": True, "ADMIN_ALLOWED_NETWORKS": OFFICE.split(",")}
    assert loaded("ADMIN_ENABLED", DJANGO_ADMIN_ENABLED="false") == {"ADMIN_ENABLED": False}


@pytest.mark.parametrize("networks", ["", OFFICE])
def test_flower_is_behind_the_load_balancer_only_when_networks_are_given(template, networks):
    resources = deployed(template, AdminAllowedNetworks=networks)
    balanced = resources["FlowerService"]["Properties"].get("LoadBalancers", [])
    if networks:
        assert balanced == [
            {"ContainerName": "flower", "ContainerPort": 5555, "TargetGroupArn": {"Ref": "FlowerTargetGroup"}}
        ]
        # ECS refuses a target group no listener rule forwards to: the service waits for the rule (by reference).
        assert {"Key": "listener-rule", "Value": {"Ref": "FlowerRule"}} in resources["FlowerService"]["Properties"][
            "Tags"
        ]
    else:
        assert balanced == []
        assert "FlowerTargetGroup" not in resources and "FlowerRule" not in resources


# --- AWS: Flower holds the broker's password and its own, nothing else ---------------------------------------------

FLOWER_NEEDS = {"REDIS_HOST", "REDIS_PORT", "REDIS_TLS", "REDIS_PASSWORD", "FLOWER_USER", "FLOWER_PASSWORD"}
# Where it listens (the Procfile reads them): no secrets.
FLOWER_NEEDS |= {"FLOWER_ADDRESS", "FLOWER_URL_PREFIX"}


def test_flower_gets_neither_the_django_secret_nor_database_credentials(stack):
    (container,) = stack["FlowerTaskDefinition"]["Properties"]["ContainerDefinitions"]
    environment = {variable["Name"] for variable in container["Environment"]}
    secrets = _container_secrets(stack["FlowerTaskDefinition"])
    assert environment | set(secrets) == FLOWER_NEEDS
    assert not {"DJANGO_SECRET_KEY", "DB_PASSWORD", "DB_USER", "DATABASE_URL"} & (environment | set(secrets))
    mentioned = json.dumps(stack["FlowerTaskDefinition"], default=str)
    assert "DjangoSecret" not in mentioned and "DatabaseSecret" not in mentioned
    # Its own Celery app, which does not load Django's settings (worker/flower.py).
    assert "exec ops/proc flower" in " ".join(container["Command"])  # the Procfile's: test_procfile.py


def _readable_secrets(role) -> set[str]:
    statements = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    return {r["Ref"] for s in statements if s["Action"] == "secretsmanager:GetSecretValue" for r in s["Resource"]}


def test_only_flower_can_read_the_flower_password_and_it_reads_nothing_else(stack):
    flower = stack["FlowerTaskDefinition"]["Properties"]
    assert flower["ExecutionRoleArn"] == {"Fn::GetAtt": ["FlowerExecutionRole", "Arn"]}
    assert _readable_secrets(stack["FlowerExecutionRole"]) == {"RedisSecret", "FlowerSecret"}
    assert "FlowerSecret" not in _readable_secrets(stack["ExecutionRole"])
    assert flower["TaskRoleArn"] == {"Fn::GetAtt": ["FlowerTaskRole", "Arn"]}
    assert "Policies" not in stack["FlowerTaskRole"]["Properties"]  # no AWS permissions (ECS Exec's, if enabled)


def test_compose_gives_flower_the_broker_and_its_password_only():
    import yaml

    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    flower = compose["services"]["flower"]
    assert set(flower["environment"]) == {"REDIS_URL", "FLOWER_BASIC_AUTH", "FLOWER_ADDRESS"}
    assert flower["command"] == ["ops/proc", "flower"]
    assert set(flower["depends_on"]) == {"redis"}


def test_every_way_of_starting_flower_uses_its_own_app():
    # make run, compose and ECS start the Procfile's `flower` (test_procfile.py): it names Flower's own app.
    assert re.search(r"^flower: celery -A worker\.flower flower ", (settings.BASE_DIR / "Procfile").read_text(), re.M)


# --- AWS: Redis memory --------------------------------------------------------------------------------------------


def test_redis_evicts_nothing(stack):
    # An evicted index key is a wrong answer, an evicted message a lost build: full, Redis must refuse writes instead.
    assert stack["CacheParameters"]["Properties"]["Properties"]["maxmemory-policy"] == "noeviction"


def test_an_alarm_watches_redis_memory_on_both_nodes(stack):
    alarm = stack["CacheMemoryAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 75)
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    watched = [q["MetricStat"] for q in queries.values() if "MetricStat" in q]
    assert {(s["Metric"]["Namespace"], s["Metric"]["MetricName"], s["Period"]) for s in watched} == {
        ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", 60)
    }
    clusters = {
        d["Value"]["Fn::Sub"] for s in watched for d in s["Metric"]["Dimensions"] if d["Name"] == "CacheClusterId"
    }
    assert clusters == {"${Cache}-001", "${Cache}-002"}
    assert stack["Cache"]["Properties"]["NumCacheClusters"] == 2
    # Alarming on the fuller node, for five minutes in a row.
    (returned,) = [q for q in queries.values() if q.get("ReturnData", True)]
    assert returned["Expression"] == f"MAX([{', '.join(sorted(i for i in queries if 'MetricStat' in queries[i]))}])"
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 5

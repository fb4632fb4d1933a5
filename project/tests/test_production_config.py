"""Production configuration: the load balancer's probe, TLS to PostgreSQL, no default secrets, least privilege on
AWS, locked requirements, the AWS stack's scaled-out layouts."""

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


def test_production_recycles_web_workers_as_the_benchmark_does():
    """gunicorn.conf.py's defaults are the only recycling setting: neither the image, the compose file nor the AWS
    stack sets another, so the benchmark (which starts the same web process) measures what production runs."""
    for name in ("Dockerfile", "docker-compose.yml", "ops/aws/servicearea.yaml", "Procfile"):
        assert (
            "MAX_REQUESTS" not in (settings.BASE_DIR / name).read_text()
            and "max-requests" not in (settings.BASE_DIR / name).read_text()
        ), name
    config: dict = {}
    exec((settings.BASE_DIR / "gunicorn.conf.py").read_text(), config)
    assert config["max_requests"] >= 1_000_000 and 0 < config["max_requests_jitter"] <= config["max_requests"] // 10


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


def _named(entries: list) -> list[dict]:
    """A container's Environment or Secrets entries; one that is there in some layouts only (Fn::If), as each of its
    branches. (The template as it is, before `deployed` decides the conditions.)"""
    named = []
    for entry in entries:
        if "Fn::If" in entry:
            named += _named([branch for branch in entry["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}])
        else:
            named.append(entry)
    return named


def _container_secrets(task_definition) -> dict:
    (container,) = task_definition["Properties"]["ContainerDefinitions"]
    return {s["Name"]: json.dumps(s["ValueFrom"], default=str) for s in _named(container.get("Secrets", []))}


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

# The index's Redis in each of its modes, and the parameter combinations the layout tests go through
# (docs/deploy.md, "Scaling out").
CLUSTER = {"IndexCacheMode": "cluster"}
SERVERLESS = {"IndexCacheMode": "serverless"}
INDEX_REDIS = {"standalone": "Cache", "cluster": "IndexCluster", "serverless": "IndexServerless"}
LAYOUTS = [
    {"IndexCacheMode": mode, "IndexReplicaReads": reads, "SeparateBrokerCache": separate}
    for mode in INDEX_REDIS
    for reads in ("false", "true")
    for separate in ("false", "true")
]


@pytest.fixture(scope="module")
def template():
    return cfn_yaml.load(str(settings.BASE_DIR / "ops" / "aws" / "servicearea.yaml"))


def deployed(template, **parameters) -> dict:
    """The template's resources as CloudFormation would create them with these parameters (the rest at their
    defaults): conditions decided, resources whose condition is false left out, Fn::If, Fn::Split and the
    parameters' Refs resolved. Other Refs and functions are kept as they are."""
    return _decided(template, "Resources", **parameters)


def _decided(template, section: str, **parameters) -> dict:
    """One section (Resources, Outputs) of the template as `deployed` describes it."""
    # As CloudFormation passes them: a Number parameter's Ref is a string too.
    defaults = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    values = {name: None if value is None else str(value) for name, value in defaults.items()} | parameters

    def condition(node) -> bool:
        if isinstance(node, str):
            return condition(template["Conditions"][node])
        ((function, arguments),) = node.items()
        if function == "Condition":
            return condition(arguments)
        if function == "Fn::Not":
            return not condition(arguments[0])
        if function == "Fn::And":
            return all(map(condition, arguments))
        if function == "Fn::Or":
            return any(map(condition, arguments))
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
                if key == "Fn::Split" and isinstance(resolve(value[1]), str):  # a parameter's value, not the stack id's
                    return resolve(value[1]).split(value[0])
            resolved = {key: resolve(value) for key, value in node.items()}
            return {key: value for key, value in resolved.items() if value is not NO_VALUE}
        if isinstance(node, list):
            return [item for item in map(resolve, node) if item is not NO_VALUE]
        return node

    return {
        name: resolve(resource)
        for name, resource in template.get(section, {}).items()
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


@pytest.mark.parametrize(
    ("layout", "broker_secret"),
    [({}, "RedisSecret"), ({"SeparateBrokerCache": "true"}, "BrokerRedisSecret"), (CLUSTER, "BrokerRedisSecret")],
)
def test_only_flower_can_read_the_flower_password_and_it_reads_nothing_else(template, layout, broker_secret):
    stack = deployed(template, **layout)
    flower = stack["FlowerTaskDefinition"]["Properties"]
    assert flower["ExecutionRoleArn"] == {"Fn::GetAtt": ["FlowerExecutionRole", "Arn"]}
    # With a broker Redis of its own, Flower's password opens nothing of the index.
    assert _readable_secrets(stack["FlowerExecutionRole"]) == {broker_secret, "FlowerSecret"}
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


# --- AWS: scaled-out layouts (docs/deploy.md, "Scaling out") -------------------------------------------------------

APP_TASKS = ["WebTaskDefinition", "WorkerTaskDefinition", "BeatTaskDefinition", "MigrateTaskDefinition"]
# What the defaults must not create: the stack stays one Redis and one database unless asked.
SCALED_OUT_ONLY = {
    "IndexCluster", "ClusterCacheParameters", "IndexClusterMemoryAlarm",
    "IndexServerless", "IndexServerlessUser", "IndexServerlessUserGroup", "CacheReaderPortIngress",
    "IndexServerlessDataAlarm", "IndexServerlessEcpuAlarm",
    "BrokerCache", "BrokerRedisSecret", "BrokerCacheMemoryAlarm", "IndexRedisUrlSecret", "IndexRedisReaderUrlSecret",
    "DatabaseReplicaA", "DatabaseReplicaB", "DatabaseReplicaLagAlarm",
}  # fmt: skip


def _getatt(resource: str, attribute: str) -> dict:
    return {"Fn::GetAtt": [resource, attribute]}


# The parts HEXINDEX_REDIS_URL and HEXINDEX_REDIS_READER_URL are composed of, by mode (database 0: a cluster's only).
INDEX_URL = {
    "standalone": {
        "Host": _getatt("Cache", "PrimaryEndPoint.Address"),
        "Port": _getatt("Cache", "PrimaryEndPoint.Port"),
        "Database": "2",
    },
    "cluster": {
        "Host": _getatt("IndexCluster", "ConfigurationEndPoint.Address"),
        "Port": _getatt("IndexCluster", "ConfigurationEndPoint.Port"),
        "Database": "0",
    },
    "serverless": {
        "Host": _getatt("IndexServerless", "Endpoint.Address"),
        "Port": _getatt("IndexServerless", "Endpoint.Port"),
        "Database": "0",
    },
}
READER_URL = {
    "standalone": {
        "Host": _getatt("Cache", "ReaderEndPoint.Address"),
        "Port": _getatt("Cache", "ReaderEndPoint.Port"),
        "Database": "2",
    },
    "serverless": {
        "Host": _getatt("IndexServerless", "ReaderEndpoint.Address"),
        "Port": _getatt("IndexServerless", "ReaderEndpoint.Port"),
        "Database": "0",
    },
}
INDEX_URL_TEMPLATE = "rediss://:{{resolve:secretsmanager:${RedisSecret}}}@${Host}:${Port}/${Database}"


def _layout_id(layout: dict) -> str:
    return ",".join(f"{name}={value}" for name, value in layout.items()) or "defaults"


def _mode(layout: dict) -> str:
    return layout.get("IndexCacheMode", "standalone")


def _separate_broker(layout: dict) -> bool:
    return _mode(layout) != "standalone" or layout.get("SeparateBrokerCache") == "true"


def _secret_name(value_from) -> str:
    """The Secrets Manager resource a ValueFrom reads: `!Ref Secret`, or `!Sub "${Secret}:json-key::"`."""
    if "Ref" in value_from:
        return value_from["Ref"]
    return re.fullmatch(r"\$\{(\w+)\}:\w+::", value_from["Fn::Sub"]).group(1)


def _injected(resources: dict, task: str) -> dict[str, str]:
    """A task's secret variables: name -> the secret resource ECS reads it from."""
    (container,) = resources[task]["Properties"]["ContainerDefinitions"]
    return {secret["Name"]: _secret_name(secret["ValueFrom"]) for secret in container.get("Secrets", [])}


def _resolved_secret(value: dict) -> str:
    """The secret a `!Sub "{{resolve:secretsmanager:${Secret}}}"` value is."""
    return re.fullmatch(r"\{\{resolve:secretsmanager:\$\{(\w+)\}\}\}", value["Fn::Sub"]).group(1)


def _password_secret(resources: dict, redis: str) -> str:
    """The secret whose value opens this Redis: a replication group's AUTH token, a serverless cache's user's."""
    if resources[redis]["Type"] == "AWS::ElastiCache::ServerlessCache":
        user = resources[resources[redis]["Properties"]["UserGroupId"]["Ref"]]["Properties"]["UserIds"][0]["Ref"]
        (password,) = resources[user]["Properties"]["AuthenticationMode"]["Passwords"]
        return _resolved_secret(password)
    return _resolved_secret(resources[redis]["Properties"]["AuthToken"])


def _redis_resources(resources: dict) -> set[str]:
    kinds = {"AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::ServerlessCache"}
    return {name for name, resource in resources.items() if resource["Type"] in kinds}


def _watched(alarm: dict) -> list[dict]:
    """The metrics an alarm reads (its expressions left out)."""
    return [query["MetricStat"]["Metric"] for query in alarm["Properties"]["Metrics"] if "MetricStat" in query]


def test_the_defaults_keep_one_redis_and_one_database(template):
    assert set(template["Resources"]) >= SCALED_OUT_ONLY  # the names below are real
    resources = deployed(template)
    assert not SCALED_OUT_ONLY & set(resources)
    assert _redis_resources(resources) == {"Cache"}
    cache = resources["Cache"]["Properties"]
    assert cache["ReplicationGroupDescription"] == "Service area index, Celery broker, cache"
    assert (cache["NumCacheClusters"], cache["CacheParameterGroupName"]) == (2, {"Ref": "CacheParameters"})
    web = _environment(resources, "WebTaskDefinition")
    assert web["REDIS_HOST"] == _getatt("Cache", "PrimaryEndPoint.Address")
    assert (web["HEXINDEX_REDIS_CLUSTER"], web["HEXINDEX_REDIS_REPLICA_READS"]) == ("false", "false")
    assert "DB_REPLICA_HOSTS" not in web
    assert "HEXINDEX_REDIS_URL" not in _injected(resources, "WebTaskDefinition")  # database 2 of REDIS_*, as before


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_each_layout_has_its_index_redis_and_a_broker_redis_beside_a_cluster(template, layout):
    expected = {INDEX_REDIS[_mode(layout)]} | ({"BrokerCache"} if _separate_broker(layout) else set())
    assert _redis_resources(deployed(template, **layout)) == expected


def test_cluster_mode_shards_and_replicates_as_asked(template):
    resources = deployed(template, **CLUSTER, IndexNumNodeGroups="4", IndexReplicasPerNodeGroup="2")
    cluster = resources["IndexCluster"]["Properties"]
    assert (cluster["ClusterMode"], cluster["NumNodeGroups"], cluster["ReplicasPerNodeGroup"]) == ("enabled", "4", "2")
    assert cluster["AutomaticFailoverEnabled"] is cluster["MultiAZEnabled"] is True
    assert cluster["CacheNodeType"] == "cache.t4g.medium"  # CacheNodeType sizes the index's nodes in every mode
    parameters = resources[cluster["CacheParameterGroupName"]["Ref"]]["Properties"]["Properties"]
    assert parameters["cluster-enabled"] == "yes"


def test_serverless_mode_is_held_to_its_limits(template):
    resources = deployed(template, **SERVERLESS, IndexServerlessMaxDataGB="20", IndexServerlessMaxECPUPerSecond="5000")
    limits = resources["IndexServerless"]["Properties"]["CacheUsageLimits"]
    assert limits == {"DataStorage": {"Maximum": "20", "Unit": "GB"}, "ECPUPerSecond": {"Maximum": "5000"}}
    # No AUTH token on Serverless: a user group whose one user is "default", so the password alone authenticates.
    (user,) = resources["IndexServerlessUserGroup"]["Properties"]["UserIds"]
    assert resources[user["Ref"]]["Properties"]["UserName"] == "default"
    assert resources[user["Ref"]]["Properties"]["AuthenticationMode"]["Type"] == "password"


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_the_broker_is_always_a_standalone_redis(template, layout):
    # kombu (Celery's Redis transport) cannot use a cluster. Flower reads the broker alone.
    resources = deployed(template, **layout)
    broker = "BrokerCache" if _separate_broker(layout) else "Cache"
    for task in [*APP_TASKS, "FlowerTaskDefinition"]:
        environment = _environment(resources, task)
        assert environment["REDIS_HOST"] == _getatt(broker, "PrimaryEndPoint.Address"), task
        assert environment["REDIS_PORT"] == _getatt(broker, "PrimaryEndPoint.Port"), task
        assert _injected(resources, task)["REDIS_PASSWORD"] == _password_secret(resources, broker), task
    redis = resources[broker]
    assert redis["Type"] == "AWS::ElastiCache::ReplicationGroup"
    assert redis["Properties"]["NumCacheClusters"] == 2
    assert not {"NumNodeGroups", "ReplicasPerNodeGroup", "ClusterMode"} & set(redis["Properties"])
    parameters = resources[redis["Properties"]["CacheParameterGroupName"]["Ref"]]["Properties"]["Properties"]
    assert "cluster-enabled" not in parameters
    assert _password_secret(resources, broker) == ("BrokerRedisSecret" if _separate_broker(layout) else "RedisSecret")


@pytest.mark.parametrize("task", APP_TASKS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_the_tasks_get_the_index_redis_of_their_layout(template, layout, task):
    resources = deployed(template, **layout)
    mode, environment, secrets = _mode(layout), _environment(resources, task), _injected(resources, task)
    assert environment["HEXINDEX_REDIS_CLUSTER"] == ("false" if mode == "standalone" else "true")
    assert environment["HEXINDEX_REDIS_REPLICA_READS"] == layout["IndexReplicaReads"]
    assert environment["REDIS_TLS"] == "true"
    # URLs hold the password: from Secrets Manager only, never in the task definition's plain environment.
    assert not {"HEXINDEX_REDIS_URL", "HEXINDEX_REDIS_READER_URL", "REDIS_PASSWORD"} & set(environment)
    index_password = _password_secret(resources, INDEX_REDIS[mode])
    if _separate_broker(layout):
        assert secrets["HEXINDEX_REDIS_URL"] == "IndexRedisUrlSecret"
        url, parts = resources["IndexRedisUrlSecret"]["Properties"]["SecretString"]["Fn::Sub"]
        assert (url, parts) == (INDEX_URL_TEMPLATE.replace("RedisSecret", index_password), INDEX_URL[mode])
    else:
        # The index shares the broker's Redis (database 2 of REDIS_*), as it always has.
        assert "HEXINDEX_REDIS_URL" not in secrets
    if layout["IndexReplicaReads"] == "true" and mode != "cluster":
        # A reader endpoint; a cluster client finds a cluster's replicas itself.
        assert secrets["HEXINDEX_REDIS_READER_URL"] == "IndexRedisReaderUrlSecret"
        url, parts = resources["IndexRedisReaderUrlSecret"]["Properties"]["SecretString"]["Fn::Sub"]
        assert (url, parts) == (INDEX_URL_TEMPLATE.replace("RedisSecret", index_password), READER_URL[mode])
    else:
        assert "HEXINDEX_REDIS_READER_URL" not in secrets


@pytest.mark.parametrize("replicas", ["0", "1", "2"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_each_execution_role_reads_exactly_the_secrets_its_tasks_are_given(template, layout, replicas):
    resources = deployed(template, **layout, DatabaseReadReplicas=replicas)
    roles = {
        "ExecutionRole": ["WebTaskDefinition", "WorkerTaskDefinition", "BeatTaskDefinition"],
        "MigrateExecutionRole": ["MigrateTaskDefinition"],
        "FlowerExecutionRole": ["FlowerTaskDefinition"],
    }
    for role, tasks in roles.items():
        given = set()
        for task in tasks:
            assert resources[task]["Properties"]["ExecutionRoleArn"] == _getatt(role, "Arn")
            given |= set(_injected(resources, task).values())
        assert _readable_secrets(resources[role]) == given, role


@pytest.mark.parametrize("replicas", ["0", "1", "2"])
def test_database_replicas_are_there_only_when_asked_and_the_web_tasks_read_them(template, replicas):
    resources = deployed(template, DatabaseReadReplicas=replicas)
    found = {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::RDS::DBInstance" and "SourceDBInstanceIdentifier" in resource["Properties"]
    }
    assert sorted(found) == ["DatabaseReplicaA", "DatabaseReplicaB"][: int(replicas)]
    for replica in found.values():
        assert replica["SourceDBInstanceIdentifier"] == {"Ref": "Database"}
        # Where the tasks already reach the primary; the application's role comes with the replication.
        assert (replica["VPCSecurityGroups"], replica["DBSubnetGroupName"]) == (
            [{"Ref": "DatabaseSecurityGroup"}],
            {"Ref": "DatabaseSubnetGroup"},
        )
        assert replica["PubliclyAccessible"] is False
        assert not {"MasterUsername", "MasterUserPassword"} & set(replica)
    web = _environment(resources, "WebTaskDefinition")
    hosts = [_getatt(name, "Endpoint.Address") for name in sorted(found)]
    if not found:
        assert "DB_REPLICA_HOSTS" not in web and "DB_REPLICA_PORT" not in web
    else:
        assert web["DB_REPLICA_HOSTS"] == (hosts[0] if len(hosts) == 1 else {"Fn::Join": [",", hosts]})
        assert web["DB_REPLICA_PORT"] == _getatt("DatabaseReplicaA", "Endpoint.Port")
    # Index builds, the schedule and migrations read and write the primary only.
    for task in ["WorkerTaskDefinition", "BeatTaskDefinition", "MigrateTaskDefinition", "FlowerTaskDefinition"]:
        assert not {"DB_REPLICA_HOSTS", "DB_REPLICA_PORT"} & set(_environment(resources, task)), task
    if found:
        lag = resources["DatabaseReplicaLagAlarm"]
        assert {m["MetricName"] for m in _watched(lag)} == {"ReplicaLag"}
        assert {m["Dimensions"][0]["Value"]["Ref"] for m in _watched(lag)} == set(found)
        assert lag["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    else:
        assert "DatabaseReplicaLagAlarm" not in resources


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_the_tasks_can_reach_every_redis_of_their_layout_and_nothing_else_can(template, layout):
    resources = deployed(template, **layout)
    for name in _redis_resources(resources):
        assert resources[name]["Properties"]["SecurityGroupIds"] == [{"Ref": "CacheSecurityGroup"}], name
    ingress = [*resources["CacheSecurityGroup"]["Properties"]["SecurityGroupIngress"]]
    if "CacheReaderPortIngress" in resources:
        ingress.append(resources["CacheReaderPortIngress"]["Properties"])
    assert {rule["SourceSecurityGroupId"]["Ref"] for rule in ingress} == {"AppSecurityGroup"}
    ports = {port for rule in ingress for port in range(rule["FromPort"], rule["ToPort"] + 1)}
    # Serverless answers replica reads on its second port.
    assert ports == ({6379, 6380} if _mode(layout) == "serverless" else {6379})
    for service in ["WebService", "WorkerService", "BeatService", "FlowerService"]:
        network = resources[service]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["SecurityGroups"] == [{"Ref": "AppSecurityGroup"}], service


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_every_node_based_redis_evicts_nothing_and_speaks_tls_with_a_password(template, layout):
    resources = deployed(template, **layout)
    for name in _redis_resources(resources) - {"IndexServerless"}:
        redis = resources[name]["Properties"]
        assert redis["TransitEncryptionEnabled"] is redis["AtRestEncryptionEnabled"] is True, name
        assert _password_secret(resources, name)
        parameters = resources[redis["CacheParameterGroupName"]["Ref"]]["Properties"]["Properties"]
        assert parameters["maxmemory-policy"] == "noeviction", name


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_an_alarm_watches_the_memory_of_every_redis_of_the_layout(template, layout):
    resources = deployed(template, **layout)
    alarms = {name for name, resource in resources.items() if resource["Type"] == "AWS::CloudWatch::Alarm"}
    memory = {
        "standalone": {"CacheMemoryAlarm"},
        "cluster": {"IndexClusterMemoryAlarm"},
        "serverless": {"IndexServerlessDataAlarm", "IndexServerlessEcpuAlarm"},
    }
    expected = memory[_mode(layout)] | ({"BrokerCacheMemoryAlarm"} if _separate_broker(layout) else set())
    assert alarms & (set().union(*memory.values()) | {"BrokerCacheMemoryAlarm"}) == expected
    for alarm in expected:
        assert resources[alarm]["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert resources[alarm]["Properties"]["Threshold"] == 75
    if _separate_broker(layout):
        watched = _watched(resources["BrokerCacheMemoryAlarm"])
        assert {d["Value"]["Fn::Sub"] for m in watched for d in m["Dimensions"] if d["Name"] == "CacheClusterId"} == {
            "${BrokerCache}-001",
            "${BrokerCache}-002",
        }


def test_the_cluster_memory_alarm_watches_every_shard_the_cluster_can_have(template):
    alarm = deployed(template, **CLUSTER)["IndexClusterMemoryAlarm"]
    watched = _watched(alarm)
    assert {m["MetricName"] for m in watched} == {"DatabaseMemoryUsagePercentage"}
    shards = {d["Value"]["Fn::Sub"] for m in watched for d in m["Dimensions"] if d["Name"] == "CacheClusterId"}
    most = template["Parameters"]["IndexNumNodeGroups"]["MaxValue"]
    assert shards == {f"${{IndexCluster}}-{shard:04d}-001" for shard in range(1, most + 1)}
    (fullest,) = [query for query in alarm["Properties"]["Metrics"] if "Expression" in query]
    assert fullest["Expression"] == f"MAX([{', '.join(f'shard{shard}' for shard in range(1, most + 1))}])"


def test_the_serverless_alarms_measure_against_the_limits_set(template):
    resources = deployed(template, **SERVERLESS)
    for alarm, metric, limit in [
        ("IndexServerlessDataAlarm", "BytesUsedForCache", "${IndexServerlessMaxDataGB}"),
        ("IndexServerlessEcpuAlarm", "ElastiCacheProcessingUnits", "${IndexServerlessMaxECPUPerSecond}"),
    ]:
        (watched,) = _watched(resources[alarm])
        # Serverless caches publish under clusterId (the cache's name), not CacheClusterId.
        assert watched["MetricName"] == metric
        assert watched["Dimensions"] == [{"Name": "clusterId", "Value": {"Ref": "IndexServerless"}}]
        (percent,) = [query for query in resources[alarm]["Properties"]["Metrics"] if "Expression" in query]
        assert limit in percent["Expression"]["Fn::Sub"]


# Every layout as CloudFormation would create it, no condition left to decide, through cfn-lint: a reference to a
# resource this layout does not create, or a value the resource refuses, fails here.
REQUIRED_PARAMETERS = {
    "ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/servicearea:1.0.0",
    "CertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0b1e7f4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
    "HostName": "api.example.com",
}
LINTED_LAYOUTS = [
    layout | {"DatabaseReadReplicas": str(n % 3), "AdminAllowedNetworks": OFFICE if n % 2 else ""}
    for n, layout in enumerate(LAYOUTS)
] + [CLUSTER | {"IndexNumNodeGroups": "10", "IndexReplicasPerNodeGroup": "5", "IndexReplicaReads": "true"}]


def _rendered(template, **parameters) -> str:
    """The template with these parameters decided: its resources and outputs as `deployed` gives them, no
    conditions. Parameters stay declared (Fn::Sub strings still name some), with these values as defaults."""
    parameters = REQUIRED_PARAMETERS | parameters
    rendered = {key: template[key] for key in ("AWSTemplateFormatVersion", "Description")}
    rendered["Parameters"] = {
        name: spec | ({"Default": parameters[name]} if name in parameters else {})
        for name, spec in template["Parameters"].items()
    }
    for section in ("Resources", "Outputs"):
        decided = _decided(template, section, **parameters).items()
        rendered[section] = {name: {k: v for k, v in item.items() if k != "Condition"} for name, item in decided}
    return json.dumps(rendered, default=str)


@pytest.fixture(scope="module")
def cfn_lint():
    from cfnlint.api import ManualArgs, lint

    # Resolved Refs leave parameters unused (W2001): that is the rendering, not the template.
    config = ManualArgs(regions=["us-east-1"], ignore_checks=["W2001"])
    return lambda text: [str(match) for match in lint(text, config=config)]


@pytest.mark.parametrize("layout", LINTED_LAYOUTS, ids=_layout_id)
def test_cfn_lint_passes_each_layout_as_deployed(template, cfn_lint, layout):
    assert cfn_lint(_rendered(template, **layout)) == []


def test_cfn_lint_catches_a_reference_to_a_resource_the_layout_does_not_create(template, cfn_lint):
    # The check above can fail: the standalone layout has no IndexCluster to point the tasks at.
    broken = json.loads(_rendered(template))
    (web,) = broken["Resources"]["WebTaskDefinition"]["Properties"]["ContainerDefinitions"]
    web["Environment"].append({"Name": "X", "Value": _getatt("IndexCluster", "ConfigurationEndPoint.Address")})
    assert any("IndexCluster" in match for match in cfn_lint(json.dumps(broken)))

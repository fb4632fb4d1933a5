"""Production: everything from the environment, nothing defaulted that could be unsafe.

Required: DJANGO_SECRET_KEY (50+ characters), DJANGO_ALLOWED_HOSTS, DATABASE_URL (or DB_HOST and friends),
REDIS_URL (or the three per-purpose Redis URLs). TLS is terminated by the load balancer, which sets
X-Forwarded-Proto. A database on another machine is reached over TLS with its certificate verified (DB_SSLMODE,
DB_SSLROOTCERT).
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASES, MIDDLEWARE, env

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a random value of at least 50 characters")
DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list the host names this service answers to")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Partners' webhooks must never reach this machine or its network (SSRF): local receivers are for development only.
if WEBHOOKS_ALLOW_LOCAL:  # noqa: F405
    raise ImproperlyConfigured("WEBHOOKS_ALLOW_LOCAL must not be set in production: it lets webhooks reach localhost")

# HTTPS end to end as the client sees it. DJANGO_SECURE=false only for a local stack without TLS.
SECURE = env.bool("DJANGO_SECURE", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = SECURE
SECURE_REDIRECT_EXEMPT = [r"^health/"]  # load balancer probes come in over plain HTTP
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_HSTS_SECONDS = 31_536_000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The load balancer probes each task at its IP address, a Host not in ALLOWED_HOSTS: answered before any host check.
MIDDLEWARE = ["project.middleware.LivenessProbeMiddleware", *MIDDLEWARE]

# PostgreSQL on another machine: TLS, with the server's certificate checked against DB_SSLROOTCERT and its name
# against the host (verify-full), so neither a passive listener nor an impostor on the network path gets the
# password or the data. On RDS the CA bundle is the one the Dockerfile puts in the image. A weaker DB_SSLMODE is
# refused unless DJANGO_SECURE=false (a local stack, e.g. docker compose's private network).
RDS_CA_BUNDLE = "/etc/ssl/rds/global-bundle.pem"
VERIFYING_SSLMODES = {"verify-ca", "verify-full"}
_database_options = DATABASES["default"].setdefault("OPTIONS", {})
_database_host = DATABASES["default"].get("HOST") or ""
DATABASE_IS_LOCAL = _database_host in {"", "localhost", "127.0.0.1", "::1"} or _database_host.startswith("/")
_default_sslmode = "prefer" if DATABASE_IS_LOCAL else "verify-full"  # prefer: libpq's own default
DB_SSLMODE = env.str("DB_SSLMODE", default=_database_options.get("sslmode", _default_sslmode))
DB_SSLROOTCERT = env.str("DB_SSLROOTCERT", default=_database_options.get("sslrootcert", RDS_CA_BUNDLE))
if SECURE and not DATABASE_IS_LOCAL and DB_SSLMODE != "verify-full":
    raise ImproperlyConfigured(
        f"DB_SSLMODE must be verify-full for the database at {_database_host} (it is {DB_SSLMODE!r}); "
        "only a local stack without TLS (DJANGO_SECURE=false) may use another mode"
    )
if DB_SSLMODE in VERIFYING_SSLMODES and not DB_SSLROOTCERT:
    raise ImproperlyConfigured("DB_SSLROOTCERT must name the CA bundle that signed the database's certificate")
_database_options["sslmode"] = DB_SSLMODE
if DB_SSLMODE in VERIFYING_SSLMODES:
    _database_options["sslrootcert"] = DB_SSLROOTCERT
for _replica in DATABASE_REPLICAS:  # the same TLS checks for the read replicas  # noqa: F405
    DATABASES[_replica]["OPTIONS"].update(
        {name: _database_options[name] for name in ("sslmode", "sslrootcert") if name in _database_options}
    )

# Fingerprinted names, and the portal's ES module imports rewritten to them (project/storage.py).
STORAGES["staticfiles"]["BACKEND"] = "project.storage.ModuleAwareManifestStaticFilesStorage"  # noqa: F405

# One JSON object per log line, for CloudWatch Logs Insights and friends.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "bare": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
        "emf": {"class": "logging.StreamHandler", "formatter": "bare"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"level": "WARNING"},
        # CloudWatch embedded metric format: each line must be the JSON document alone (core/metrics.py).
        "servicearea.emf": {"handlers": ["emf"], "level": "INFO", "propagate": False},
    },
}

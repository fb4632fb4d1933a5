"""Settings shared by every environment. Values come from the environment (or a local .env file)."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import environ
from corsheaders.defaults import default_headers as default_cors_headers
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# Real environment variables win over the file (docker compose, CI, production). Images never contain one.
if env.bool("DJANGO_READ_DOT_ENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "rest_framework",
    "knox",
    "rest_framework_api_key",
    "rest_framework_gis",
    "django_filters",
    "corsheaders",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "phonenumber_field",
    "accounts",
    "providers",
    "areas",
    "hexindex",
    "partners",
    "webhooks",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "project.middleware.RequestTooLargeMiddleware",
    "project.admin_access.AdminAccessMiddleware",
    "project.errors.DependencyErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

# /metrics (Prometheus) answers loopback clients, and anyone sending `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# The Django admin: off entirely, or only from these networks (e.g. the VPN's CIDR) in production.
ADMIN_ENABLED = env.bool("DJANGO_ADMIN_ENABLED", default=True)
ADMIN_ALLOWED_NETWORKS = env.list("DJANGO_ADMIN_ALLOWED_NETWORKS", default=[])
# /health/ tells anyone its status and which dependency fails; its figures (areas not indexed yet, the index's
# state) only staff (session or token) and clients in these networks (CIDRs; loopback: the host's own probes).
HEALTH_DETAIL_ALLOWED_NETWORKS = env.list("HEALTH_DETAIL_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
# Browser-based partners: the origins allowed to call the API (django-cors-headers; the lean lookup paths apply
# the same lists themselves). Tokens go in headers, never cookies, so no credentials mode.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_ALL_ORIGINS = env.bool("CORS_ALLOW_ALL_ORIGINS", default=False)
CORS_EXPOSE_HEADERS = ["ETag", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"]
CORS_ALLOW_HEADERS = (*default_cors_headers, "if-match", "if-none-match", "x-api-key")

# Partner API keys (partners/): sent as `X-API-Key`; each key has its own limit, in points looked up per minute (a
# batch counts its points, a trip 2). Callers without a key share a low limit per client address ("none": no limit).
API_KEY_CUSTOM_HEADER = "HTTP_X_API_KEY"
PARTNER_KEY_DEFAULT_RATE_PER_MINUTE = env.int("PARTNER_KEY_DEFAULT_RATE_PER_MINUTE", default=600)
_anonymous_rate = env.str("LOOKUP_ANONYMOUS_RATE_PER_MINUTE", default="30")
LOOKUP_ANONYMOUS_RATE_PER_MINUTE = None if _anonymous_rate.lower() == "none" else int(_anonymous_rate)
# Owners testing their own areas (include_mine=true with their token) are limited per user instead.
LOOKUP_OWNER_RATE_PER_MINUTE = env.int("LOOKUP_OWNER_RATE_PER_MINUTE", default=120)
# When Redis cannot count (down, slow), each web process admits this share of every limit on its own: with up to
# 1 / share processes, the limits hold. Unknown keys from one address, per process and minute, before a 429.
RATE_LIMIT_FALLBACK_SHARE = env.float("RATE_LIMIT_FALLBACK_SHARE", default=0.25)
PARTNER_UNKNOWN_KEYS_PER_MINUTE = env.int("PARTNER_UNKNOWN_KEYS_PER_MINUTE", default=20)
# Usage per key and day is counted in each web process and written to PostgreSQL this often (and at exit).
USAGE_FLUSH_SECONDS = env.float("USAGE_FLUSH_SECONDS", default=10.0)
# By a thread of each process, so a process that stops receiving requests still writes what it counted.
USAGE_FLUSH_IN_BACKGROUND = env.bool("USAGE_FLUSH_IN_BACKGROUND", default=True)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],  # the API docs' page (project/docs.py)
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if "DATABASE_URL" in env:
    DATABASES = {"default": env.db("DATABASE_URL", engine="django.contrib.gis.db.backends.postgis")}
else:
    # Container platforms inject the password alone from a secret store (ECS, Kubernetes): compose it here.
    DATABASES = {
        "default": {
            "ENGINE": "django.contrib.gis.db.backends.postgis",
            "HOST": env.str("DB_HOST", default="127.0.0.1"),
            "PORT": env.int("DB_PORT", default=5432),
            "NAME": env.str("DB_NAME", default="servicearea"),
            "USER": env.str("DB_USER", default="servicearea"),
            "PASSWORD": env.str("DB_PASSWORD", default=""),
        }
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
# A request must never wait on a stuck query: web processes (project/wsgi.py) set a statement timeout, and a
# query that exceeds it is a 503 naming PostgreSQL. Workers and commands keep none (bulk builds, rebuilds).
DB_STATEMENT_TIMEOUT_MS = env.int("DB_STATEMENT_TIMEOUT_MS", default=0)
if DB_STATEMENT_TIMEOUT_MS:
    DATABASES["default"]["OPTIONS"]["options"] = f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"

# Streaming read replicas of the database. Lookups check live areas' outlines there (core.db.replica), each row's
# versions compared with the index's and checked again on the primary when the replica has not replayed them yet;
# nothing else reads them (writes, pending areas and the exact fallback need the primary's latest commit).
# DATABASE_REPLICA_URLS (comma-separated URLs), or DB_REPLICA_HOSTS with DB_REPLICA_PORT and the primary's name,
# user and password (as the AWS stack gives them).
DATABASE_REPLICAS: list[str] = []
for _number, _replica in enumerate(
    [
        env.db_url_config(url, engine="django.contrib.gis.db.backends.postgis")
        for url in env.list("DATABASE_REPLICA_URLS", default=[])
    ]
    or [
        {**DATABASES["default"], "HOST": host, "PORT": env.int("DB_REPLICA_PORT", default=DATABASES["default"]["PORT"])}
        for host in env.list("DB_REPLICA_HOSTS", default=[])
    ],
    start=1,
):
    _replica["OPTIONS"] = {**DATABASES["default"]["OPTIONS"], **_replica.get("OPTIONS", {})}
    _replica.update(CONN_MAX_AGE=DATABASES["default"]["CONN_MAX_AGE"], CONN_HEALTH_CHECKS=True)
    _replica["TEST"] = {"MIRROR": "default"}  # tests read the primary through it (no second test database)
    DATABASES[f"replica{_number}"] = _replica
    DATABASE_REPLICAS.append(f"replica{_number}")
# A replica that fails (down, refusing) is left alone by that web process this long: its checks go to the primary.
DATABASE_REPLICA_RETRY_SECONDS = env.float("DATABASE_REPLICA_RETRY_SECONDS", default=30.0)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis server, three logical databases: Celery broker, Django cache, and the hexagon index.
# Each can point elsewhere on its own (e.g. a separate cache cluster in production).
if "REDIS_URL" in env:
    REDIS_URL = env.str("REDIS_URL").rstrip("/")
else:
    _redis_auth = f":{quote(env.str('REDIS_PASSWORD'), safe='')}@" if env.str("REDIS_PASSWORD", default="") else ""
    _redis_scheme = "rediss" if env.bool("REDIS_TLS", default=False) else "redis"
    _redis_host = f"{env.str('REDIS_HOST', default='127.0.0.1')}:{env.int('REDIS_PORT', default=6379)}"
    REDIS_URL = f"{_redis_scheme}://{_redis_auth}{_redis_host}"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"{REDIS_URL}/0")
CACHE_REDIS_URL = env.str("CACHE_REDIS_URL", default=f"{REDIS_URL}/1")
HEXINDEX_REDIS_URL = env.str("HEXINDEX_REDIS_URL", default=f"{REDIS_URL}/2")
# A request must never hang on a sick Redis: fail fast and fall back.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=1.0)
# The lookup's own read answers in well under a millisecond: waiting longer than this means Redis is sick. Then
# the circuit opens: for HEXINDEX_BREAKER_SECONDS this process's lookups go straight to PostGIS (exact, slower)
# and index writes are refused at once, instead of each waiting for a timeout; then one lookup tries Redis again.
HEXINDEX_LOOKUP_TIMEOUT = env.float("HEXINDEX_LOOKUP_TIMEOUT", default=0.25)
# Index writes of the worker's builds and rebuilds: scripts over thousands of areas at once.
HEXINDEX_BULK_TIMEOUT = env.float("HEXINDEX_BULK_TIMEOUT", default=60.0)
# The index's Redis may be one server or a Redis Cluster (ElastiCache cluster mode, ElastiCache Serverless): its keys
# are grouped in buckets that each live in one hash slot (hexindex/redis_index.py), named after this prefix (so
# several deployments can share one Redis without numbered databases, which a cluster does not have).
HEXINDEX_REDIS_CLUSTER = env.bool("HEXINDEX_REDIS_CLUSTER", default=False)
HEXINDEX_KEY_PREFIX = env.str("HEXINDEX_KEY_PREFIX", default="hx")
HEXINDEX_BUCKETS = env.int("HEXINDEX_BUCKETS", default=256)
# Lookups may read replicas: the cluster's, or a standalone primary's through its reader endpoint. Writes then
# wait (WAIT) until HEXINDEX_REDIS_REPLICAS replicas hold a pending registration, at most HEXINDEX_REDIS_WAIT_MS,
# before their transaction commits: the next lookup, on any replica, sees the change (read-your-writes).
HEXINDEX_REDIS_REPLICA_READS = env.bool("HEXINDEX_REDIS_REPLICA_READS", default=False)
HEXINDEX_REDIS_READER_URL = env.str("HEXINDEX_REDIS_READER_URL", default="")
HEXINDEX_REDIS_REPLICAS = env.int("HEXINDEX_REDIS_REPLICAS", default=1)
HEXINDEX_REDIS_WAIT_MS = env.int("HEXINDEX_REDIS_WAIT_MS", default=500)
HEXINDEX_BREAKER_SECONDS = env.float("HEXINDEX_BREAKER_SECONDS", default=5.0)
# Outline segments of areas near cells kept by each web process for exact checks (32 bytes each): never stale
# (keyed by area version). Lookups near outlines need no PostgreSQL query once their shapes are here.
HEXINDEX_SHAPE_CACHE_SEGMENTS = env.int("HEXINDEX_SHAPE_CACHE_SEGMENTS", default=2_000_000)
# Outlines one web process fetched from PostgreSQL are shared with the others through Redis, up to this many
# (~1.5 KB each; when full, a random one makes room).
HEXINDEX_SHARED_SHAPES = env.int("HEXINDEX_SHARED_SHAPES", default=150_000)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": CACHE_REDIS_URL,
        "KEY_PREFIX": "sa",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            # The cache only backs throttling; an unreachable cache must not turn requests into 500s.
            "IGNORE_EXCEPTIONS": True,
        },
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# API tokens (django-rest-knox): hashed, expiring, several per user, each revocable.
KNOX_TOKEN_MODEL = "accounts.ApiToken"
# knox's and djangorestframework-api-key's own migrations would create tables for their default models, which
# accounts.ApiToken and partners.PartnerKey replace.
MIGRATION_MODULES = {"knox": None, "rest_framework_api_key": None}
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=90)
API_TOKEN_MAX_TTL_DAYS = env.int("API_TOKEN_MAX_TTL_DAYS", default=365)
API_TOKENS_PER_USER = env.int("API_TOKENS_PER_USER", default=50)
REST_KNOX = {"TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS), "AUTH_HEADER_PREFIX": "Token", "AUTO_REFRESH": False}

# Sign-in attempts (API, portal, admin; accounts/security.py): nothing is locked, attempts wait. From one address
# for one username, after LOGIN_FAILURES_BEFORE_BACKOFF failures each attempt waits twice as long as the last (1 s,
# 2 s, ... at most LOGIN_BACKOFF_MAX_SECONDS); likewise for one address across usernames after
# LOGIN_FAILURES_PER_ADDRESS. One username across addresses: after LOGIN_FAILURES_PER_USERNAME, at most
# LOGIN_USERNAME_MAX_WAIT seconds, not for addresses that signed in as it in the last LOGIN_KNOWN_ADDRESS_DAYS days.
# Failures are forgotten LOGIN_FAILURE_WINDOW seconds after the latest.
AUTHENTICATION_BACKENDS = ["accounts.security.LoginLimitBackend"]
LOGIN_FAILURES_BEFORE_BACKOFF = env.int("LOGIN_FAILURES_BEFORE_BACKOFF", default=5)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=50)
LOGIN_FAILURES_PER_USERNAME = env.int("LOGIN_FAILURES_PER_USERNAME", default=200)
LOGIN_BACKOFF_MAX_SECONDS = env.int("LOGIN_BACKOFF_MAX_SECONDS", default=900)
LOGIN_USERNAME_MAX_WAIT = env.int("LOGIN_USERNAME_MAX_WAIT", default=60)
LOGIN_KNOWN_ADDRESS_DAYS = env.int("LOGIN_KNOWN_ADDRESS_DAYS", default=30)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=86_400)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The provider portal's browser libraries, from npm (package-lock.json; ops/bootstrap.sh runs `npm ci`): only the
# files the pages load are served, under static/vendor/.
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    ("vendor/leaflet", NODE_MODULES / "leaflet" / "dist"),
    ("vendor/leaflet-geoman", NODE_MODULES / "@geoman-io" / "leaflet-geoman-free" / "dist"),
    ("vendor/topojson-client", NODE_MODULES / "topojson-client" / "dist"),
    ("vendor/world-atlas", NODE_MODULES / "world-atlas"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# What one user may store (staff are exempt): anyone can register, and every area costs every lookup near it.
# A single area may span at most AREA_MAX_SPAN_KM (its diameter); bigger regions are split by their owner.
QUOTA_AREAS_PER_OWNER = env.int("QUOTA_AREAS_PER_OWNER", default=2_000)
QUOTA_VERTICES_PER_OWNER = env.int("QUOTA_VERTICES_PER_OWNER", default=2_000_000)
AREA_MAX_SPAN_KM = env.float("AREA_MAX_SPAN_KM", default=2_000.0)
# Positions of geometry one list page may carry (about 40 bytes of memory and of JSON each); larger pages are
# refused with a hint to ask for a smaller page, `geometry=simplified` or `geometry=none`.
LIST_MAX_POSITIONS_PER_PAGE = env.int("LIST_MAX_POSITIONS_PER_PAGE", default=250_000)

# The provider portal's base map (/portal/ and the admin's area maps): a raster tile URL template, or empty for
# none. Country outlines shipped with the page are drawn either way, so the map stays readable offline.
PORTAL_TILE_URL = env.str("PORTAL_TILE_URL", default="https://tile.openstreetmap.org/{z}/{x}/{y}.png")
PORTAL_TILE_ATTRIBUTION = env.str("PORTAL_TILE_ATTRIBUTION", default="© OpenStreetMap contributors")


def _tile_origins(template: str) -> list[str]:
    """Where the map's tiles come from, for the CSP: `https://{s}.tile.example.org/{z}/{x}/{y}.png` is
    `https://*.tile.example.org`."""
    parts = urlsplit(template.replace("{s}", "*"))
    return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme and parts.netloc else []


# Content-Security-Policy (django-csp) on every page: the portal, the admin, the API docs. Scripts, styles and
# fonts only from this site (the portal's libraries are served from node_modules as static files, its settings
# travel as JSON, not as script), images also from the tile server and data: URLs (the libraries' icons); the
# page's own requests to this site only. project/docs.py relaxes it for the API docs (inline styles, ReDoc's worker).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", *_tile_origins(PORTAL_TILE_URL)],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Request bodies: a service area with the maximum vertex count fits comfortably; anything larger is
# refused with 413 before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)

REST_FRAMEWORK = {
    # Tokens for programs; the session (with DRF's CSRF check on writes) for the provider portal's pages.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "project.exceptions.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["project.throttling.WriteRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "auth": env.str("AUTH_THROTTLE_RATE", default="30/minute"),  # register and log in, per address
        "writes": env.str("WRITE_THROTTLE_RATE", default="120/minute"),  # creates, updates, deletes, per user
    },
    # Proxies in front of the app that append to X-Forwarded-For (behind the AWS load balancer: 1). With 0 the
    # header is ignored: a client could write anything into it to dodge per-address limits.
    "NUM_PROXIES": env.int("TRUSTED_PROXY_COUNT", default=0),
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "project.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Service Area Lookup API",
    "DESCRIPTION": (
        "Transport providers draw the areas they serve as GeoJSON polygons; partners ask which providers "
        "serve a point and at what price. Coordinates in GeoJSON are `[longitude, latitude]`; query "
        "strings use `lat` and `lng`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyAuth": {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "A partner API key (from staff). Optional on lookups: without one, a low limit per "
                "address applies.",
            }
        }
    },
    "ENUM_NAME_OVERRIDES": {
        "LanguageEnum": "providers.codes.LANGUAGE_CHOICES",
        "CurrencyEnum": "providers.codes.CURRENCY_CHOICES",
        "IndexStatusEnum": "hexindex.models.IndexStatus",
        "WebhookDeliveryKindEnum": "webhooks.models.WebhookDelivery.Kind",
        "WebhookDeliveryStatusEnum": "webhooks.models.WebhookDelivery.Status",
    },
}

PHONENUMBER_DEFAULT_REGION = None
PHONENUMBER_DEFAULT_FORMAT = "E164"

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
# A broker outage of any length is waited out, at start and later: the worker and beat reconnect with back-off
# (2 s more per attempt, at most 30 s apart) instead of exiting after 100 attempts. worker/broker.py keeps kombu
# from crashing the worker when the outage hits while a task runs.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Tasks running when the broker connection drops keep running: they cannot be acknowledged on the lost connection
# (their message comes back after the visibility timeout, and they are idempotent), but cancelling would kill a
# Redis rebuild midway and leave its lock held for REBUILD_LOCK_SECONDS, with lookups on PostGIS meanwhile.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Publishing happens inside web requests (after commit): give up quickly when the broker is down;
# the periodic sweep re-enqueues whatever was not published.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_timeout": 5,
    # A connection that went silent (a frozen Redis, a failover behind a load balancer) is noticed within this
    # many seconds, instead of when the operating system gives up on it.
    "health_check_interval": 10,
    "socket_keepalive": True,
    # Longer than the hard time limit, so a running task is never redelivered to a second worker.
    "visibility_timeout": 3600,
}
CELERY_TASK_DEFAULT_QUEUE = "index"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A pool process is replaced once it has run this many tasks, or after a task that left it above this many KiB
# resident (a Redis rebuild reads the whole cell table): memory freed by Python is not always returned.
# Worker pool processes (the Procfile's `worker`; Celery's default: one per CPU).
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=None)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=1000)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=512_000)
# A task whose message was delivered this many times without its process ever returning (it kills its worker:
# out of memory, a crash in a C library) is given up rather than requeued forever (core/tasks.py).
TASK_MAX_WORKER_DEATHS = env.int("TASK_MAX_WORKER_DEATHS", default=3)
# The index sweep (hexindex.maintenance.sweep) runs every HEXINDEX_SWEEP_SECONDS. Index work it queued is sent
# again once it has not come back for HEXINDEX_REENQUEUE_AFTER seconds (HEXINDEX_FAILED_RETRY_AFTER after a
# failure), the wait doubling with every further attempt, up to HEXINDEX_RETRY_MAX_WAIT.
HEXINDEX_SWEEP_SECONDS = env.float("HEXINDEX_SWEEP_SECONDS", default=60.0)
HEXINDEX_REENQUEUE_AFTER = env.int("HEXINDEX_REENQUEUE_AFTER", default=120)
HEXINDEX_FAILED_RETRY_AFTER = env.int("HEXINDEX_FAILED_RETRY_AFTER", default=600)
HEXINDEX_RETRY_MAX_WAIT = env.int("HEXINDEX_RETRY_MAX_WAIT", default=6 * 3600)
# Registrations Redis could not take (staff revoking a provider while it was down or full) wait in PostgreSQL and
# are replayed this often (and by each web process before it trusts Redis again).
HEXINDEX_REPLAY_SECONDS = env.float("HEXINDEX_REPLAY_SECONDS", default=5.0)
# One owner's changes waiting to be indexed: at most this many areas at once, each registered at most this many
# cells (what an area edited in a loop across the map could pile up); beyond, its writes get a 429 until the worker
# catches up. Below MAX_PENDING_CHECKS (256), so one owner alone never sends lookups anywhere to PostgreSQL.
HEXINDEX_PENDING_AREAS_PER_OWNER = env.int("HEXINDEX_PENDING_AREAS_PER_OWNER", default=128)
HEXINDEX_PENDING_CELLS_PER_AREA = env.int("HEXINDEX_PENDING_CELLS_PER_AREA", default=4096)
# When set (production on AWS), the worker publishes its queue depths there every minute for autoscaling.
CLOUDWATCH_METRICS_NAMESPACE = env.str("CLOUDWATCH_METRICS_NAMESPACE", default="")

# Partner webhooks (webhooks/): the change feed POSTed to registered URLs, signed, in batches, retried with backoff
# (doubling from WEBHOOKS_RETRY_BASE_SECONDS up to WEBHOOKS_RETRY_MAX_SECONDS); after WEBHOOKS_MAX_FAILURES failures
# in a row (33: about a day) the webhook is disabled. Plain http to 127.0.0.1/localhost only with
# WEBHOOKS_ALLOW_LOCAL (on in development and tests, refused by the production settings); private and link-local
# addresses never. Each request has WEBHOOKS_REQUEST_DEADLINE_SECONDS in all (name lookup, connecting, TLS, the
# answer); at most WEBHOOKS_PARTNER_CONCURRENCY requests to one partner's webhooks run at a time.
WEBHOOKS_PER_PARTNER = env.int("WEBHOOKS_PER_PARTNER", default=5)
WEBHOOKS_ALLOW_LOCAL = env.bool("WEBHOOKS_ALLOW_LOCAL", default=False)
WEBHOOKS_POLL_SECONDS = env.float("WEBHOOKS_POLL_SECONDS", default=5.0)
WEBHOOKS_BATCH_SIZE = env.int("WEBHOOKS_BATCH_SIZE", default=100)
WEBHOOKS_TIME_BUDGET_SECONDS = env.float("WEBHOOKS_TIME_BUDGET_SECONDS", default=20.0)
WEBHOOKS_CONNECT_TIMEOUT = env.float("WEBHOOKS_CONNECT_TIMEOUT", default=3.0)
WEBHOOKS_REQUEST_DEADLINE_SECONDS = env.float("WEBHOOKS_REQUEST_DEADLINE_SECONDS", default=10.0)
WEBHOOKS_PARTNER_CONCURRENCY = env.int("WEBHOOKS_PARTNER_CONCURRENCY", default=2)
# Tests only (a local TLS receiver's own certificate): a CA file trusted instead of the system's. Not read from the
# environment.
WEBHOOKS_CA_BUNDLE = None
WEBHOOKS_RETRY_BASE_SECONDS = env.int("WEBHOOKS_RETRY_BASE_SECONDS", default=10)
WEBHOOKS_RETRY_MAX_SECONDS = env.int("WEBHOOKS_RETRY_MAX_SECONDS", default=3600)
WEBHOOKS_MAX_FAILURES = env.int("WEBHOOKS_MAX_FAILURES", default=33)
WEBHOOKS_DELIVERIES_KEPT = env.int("WEBHOOKS_DELIVERIES_KEPT", default=100)
WEBHOOKS_DELIVERIES_MAX_AGE_DAYS = env.int("WEBHOOKS_DELIVERIES_MAX_AGE_DAYS", default=7)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# GDAL < 3.9 cannot sandbox file and network access while parsing spatial references. User geometry never
# reaches GDAL here: GeoJSON is parsed by areas.geometry and handed to GEOS as WKB.
SILENCED_SYSTEM_CHECKS = ["gis.W001"]

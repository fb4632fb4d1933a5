"""Tests: a database of their own (the test runner creates `test_servicearea`) and Redis databases of their own.
`make test` also runs them on a PostgreSQL cluster and a Redis server of its own (ops/test-services.sh), so nothing
else on the machine can disturb them; pytest run by hand uses the servers in .env (those of `make run`)."""

from .base import *  # noqa: F403
from .base import REDIS_URL, env

SECRET_KEY = SECRET_KEY or "test-only-secret-key"  # noqa: F405
DEBUG = False
CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL", default=f"{REDIS_URL}/10")
CACHE_REDIS_URL = env.str("TEST_CACHE_REDIS_URL", default=f"{REDIS_URL}/11")
HEXINDEX_REDIS_URL = env.str("TEST_HEXINDEX_REDIS_URL", default=f"{REDIS_URL}/12")
CACHES["default"]["LOCATION"] = CACHE_REDIS_URL  # noqa: F405
# A worker process started by an end-to-end test connects straight to the test database.
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["NAME"] = env.str("TEST_DATABASE_NAME")  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Lookup and index tests use areas of any size; the span limit has tests of its own (areas/tests/test_quotas.py).
AREA_MAX_SPAN_KM = 50_000.0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Most tests run tasks in-process; the end-to-end test starts a real worker instead.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
# Lookup tests look up many points anonymously; the limits have tests of their own (partners/tests).
LOOKUP_ANONYMOUS_RATE_PER_MINUTE = None
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"auth": "1000/minute", "writes": "100000/minute"}  # noqa: F405
# Usage is written when a test asks (or a request finds it due), never by a thread outside the test's transaction.
USAGE_FLUSH_IN_BACKGROUND = False
# Webhook tests deliver to a receiver on 127.0.0.1 (webhooks/tests); the guard itself is tested with it off.
WEBHOOKS_ALLOW_LOCAL = True

# Serve static files (Swagger UI, ReDoc) straight from the apps, without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

"""`make bench`: production-like settings (DEBUG off, persistent connections, quiet logs) on a database and
Redis databases of its own, plus the reference endpoints the benchmark compares the lookup with."""

from .base import *  # noqa: F403
from .base import INSTALLED_APPS, REDIS_URL, env

DEBUG = False
SECRET_KEY = SECRET_KEY or "bench-only-secret-key"  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
DATABASES["default"]["NAME"] = env.str("BENCH_DATABASE_NAME", default="bench_servicearea")  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = None  # noqa: F405
CELERY_BROKER_URL = env.str("BENCH_CELERY_BROKER_URL", default=f"{REDIS_URL}/13")
CACHE_REDIS_URL = env.str("BENCH_CACHE_REDIS_URL", default=f"{REDIS_URL}/14")
HEXINDEX_REDIS_URL = env.str("BENCH_HEXINDEX_REDIS_URL", default=f"{REDIS_URL}/15")
CACHES["default"]["LOCATION"] = CACHE_REDIS_URL  # noqa: F405
# Builds run in-process (measured); whatever the import queues for a worker is published and never run.
CELERY_TASK_ALWAYS_EAGER = False
LOOKUP_ANONYMOUS_RATE_PER_MINUTE = None  # the benchmark's clients look up anonymously, as fast as they can
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
WHITENOISE_USE_FINDERS = True  # no collectstatic for benchmark runs
STATIC_ROOT = None  # ... so there is no collected directory to look for

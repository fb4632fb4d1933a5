"""The Celery app Flower runs (`celery -A worker.flower flower`): the broker and the queue names, and nothing else.

Flower reads the broker (queue lengths, the workers' events and replies) and never runs a task. The workers' app
(worker/celery.py) is configured from Django's settings, and production settings refuse to load without the Django
secret key; its task modules reach the database. Flower would have to hold secrets it never uses, in the one
service that has a web page of its own. This app reads the environment alone: the broker URL as
project/settings/base.py composes it (CELERY_BROKER_URL; else REDIS_URL plus /0; else REDIS_HOST, REDIS_PORT,
REDIS_PASSWORD and REDIS_TLS, as ECS injects them), and Flower's own FLOWER_* options (FLOWER_BASIC_AUTH).
project/tests/test_flower_app.py keeps it in step with the settings.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import environ
from celery import Celery
from kombu import Queue

# A developer's .env, as the settings read it (real environment variables win; images never contain one).
if environ.Env().bool("DJANGO_READ_DOT_ENV", default=True):
    environ.Env.read_env(Path(__file__).resolve().parent.parent / ".env", overwrite=False)

# worker/celery.py routes every task to one of these; the broker page lists them before any worker reports.
from worker.queues import QUEUES


def broker_url(variables: Mapping[str, str]) -> str:
    """The Celery broker URL from these environment variables, as the Django settings compose it."""
    if "CELERY_BROKER_URL" in variables:
        return variables["CELERY_BROKER_URL"]
    if "REDIS_URL" in variables:
        return f"{variables['REDIS_URL'].rstrip('/')}/0"
    password = variables.get("REDIS_PASSWORD", "")
    auth = f":{quote(password, safe='')}@" if password else ""
    tls = variables.get("REDIS_TLS", "").strip().lower() in environ.Env.BOOLEAN_TRUE_STRINGS
    host = f"{variables.get('REDIS_HOST', '127.0.0.1')}:{int(variables.get('REDIS_PORT', '6379'))}"
    return f"{'rediss' if tls else 'redis'}://{auth}{host}/0"


# No fix-ups: Celery's Django fix-up, installed whenever DJANGO_SETTINGS_MODULE is set (the image sets it), would
# load the Django settings as Flower starts. Not the current app: importing this module (tests do) must not take
# tasks and `.delay()` away from the workers' app.
app = Celery("servicearea", fixups=[], set_as_current=False)
app.conf.update(
    broker_url=broker_url(os.environ),
    # As the workers': a broker outage is waited out, and a silent connection is noticed within seconds.
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    broker_transport_options={
        "socket_connect_timeout": float(os.environ.get("REDIS_SOCKET_TIMEOUT", "1.0")),
        "socket_timeout": 5,
        "health_check_interval": 10,
        "socket_keepalive": True,
    },
    task_default_queue=QUEUES[0],
    task_queues=[Queue(name) for name in QUEUES],
)

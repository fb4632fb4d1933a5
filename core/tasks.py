"""What every task of the app shares (DeliveryCountingTask): a periodic task runs once per period however many
beats send it, and a task that keeps killing its worker is given up instead of being delivered forever.

Periodic tasks are sent by beat with a `beat_period` header (worker/celery.py). Any number of beats may run (two,
so that one can fail): the first delivery of a task in each period of that length, by the wall clock, claims the
period in the broker's Redis (SET NX) and runs; the others are acknowledged without running.

Tasks are acknowledged late and requeued when the process running them dies (CELERY_TASK_ACKS_LATE,
CELERY_TASK_REJECT_ON_WORKER_LOST), so that a crash, a deploy or the out-of-memory killer loses no work. A task that
itself kills its process (an input that exhausts memory, a crash in a C library) would then come back again and
again, taking a worker process down each time. So every delivery is counted in the broker's Redis, by task id,
until it returns (or raises, or retries): a count of TASK_MAX_WORKER_DEATHS when a delivery starts means that many
deliveries before it never returned. The task is then given up: `on_worker_deaths` runs, and the message is
acknowledged.
"""

import logging
import time
from contextlib import contextmanager

from celery import Task
from celery.exceptions import Ignore
from celery.signals import task_postrun
from django.conf import settings

log = logging.getLogger(__name__)

# Longer than any redelivery takes (the broker's visibility timeout is an hour), short enough to clean up after
# deliveries that were never redelivered.
DELIVERIES_TTL_SECONDS = 7 * 24 * 3600


def deliveries_key(task_id: str) -> str:
    return f"worker:deliveries:{task_id}"


class DeliveryCountingTask(Task):
    """The base class of every task of the app (worker/celery.py)."""

    def before_start(self, task_id, args, kwargs):
        period = getattr(self.request, "beat_period", None) or (self.request.headers or {}).get("beat_period")
        if period and not self.first_in_period(float(period)):
            log.info("%s[%s]: another beat's copy ran in this period already", self.name, task_id)
            raise Ignore()
        if self.request.is_eager:
            return  # run in the caller's process: no worker to kill
        deaths = self._count_delivery(task_id) - 1
        if deaths >= settings.TASK_MAX_WORKER_DEATHS:
            self.on_worker_deaths(deaths, args, kwargs)
            raise Ignore()  # acknowledged: not delivered again

    def on_worker_deaths(self, deaths: int, args: tuple, kwargs: dict) -> None:
        """Called instead of running a task whose last `deaths` deliveries never returned. Tasks whose failures
        are shown somewhere override it to record this one."""
        log.error("%s[%s] killed its worker %d times: given up", self.name, self.request.id, deaths)

    def first_in_period(self, seconds: float) -> bool:
        """Whether this delivery is the first of this task in the current period (and claims it). When the broker's
        Redis cannot say, it runs: periodic tasks are idempotent, and running twice beats not running."""
        period = int(time.time() // seconds)
        key = f"worker:period:{self.name}:{seconds:g}:{period}"
        try:
            with self._broker_redis() as client:
                return bool(client.set(key, self.request.id or "", nx=True, ex=max(int(seconds * 3), 2)))
        except Exception:
            log.warning("could not claim the period of %s; running it", self.name, exc_info=True)
            return True

    def _count_delivery(self, task_id: str) -> int:
        key = deliveries_key(task_id)
        try:
            with self._broker_redis() as client:
                count, _ = client.pipeline().incr(key).expire(key, DELIVERIES_TTL_SECONDS).execute()
        except Exception:  # the broker just delivered this message; if it is gone again, run the task anyway
            log.warning("could not count the deliveries of %s[%s]", self.name, task_id, exc_info=True)
            return 1
        return count

    def delivery_returned(self, task_id: str) -> None:
        try:
            with self._broker_redis() as client:
                client.delete(deliveries_key(task_id))
        except Exception:  # a stale count only matters if this task id is delivered again and dies twice more
            log.warning("could not clear the deliveries of %s[%s]", self.name, task_id, exc_info=True)

    @contextmanager
    def _broker_redis(self):
        with self.app.pool.acquire(block=True) as connection, connection.default_channel.conn_or_acquire() as client:
            yield client


@task_postrun.connect
def _forget_returned_delivery(sender=None, task_id=None, **kwargs):
    # Sent whatever the outcome (success, failure, retry, given up), in the process that ran the task.
    if isinstance(sender, DeliveryCountingTask) and not sender.request.is_eager:
        sender.delivery_returned(task_id)

"""Index work sent to the worker by task name (hexindex.tasks defines the tasks; the writers, the sweep and the
lookup only queue them, so none of them imports the tasks module, which imports them). Sending never raises: a
broker that is down is logged, and the sweep sends the work again later."""

from __future__ import annotations

import logging

from celery import current_app

log = logging.getLogger(__name__)

INDEX_AREA = "hexindex.index_area"
REFRESH_AREAS = "hexindex.refresh_areas"
REBUILD_REDIS = "hexindex.rebuild_redis"


def send(task_name: str, *args) -> bool:
    try:
        # By name: the task's own .delay where it is registered (hexindex.apps imports the tasks: .delay honours
        # eager mode, as tests run them), the broker by name otherwise (routes are by name too).
        task = current_app.tasks.get(task_name)
        if task is not None:
            task.delay(*args)
        else:
            current_app.send_task(task_name, args=list(args))
    except Exception:
        # The broker is down. The write has committed and lookups already check the areas directly; the sweep
        # enqueues them again later.
        log.warning("could not enqueue %s%r; the sweep will retry", task_name, args, exc_info=True)
        return False
    return True

"""One delivery per webhook at a time, so its changes go out in order: a PostgreSQL session advisory lock.

Not `select_for_update` on the webhook's row: that keeps a transaction open for the whole delivery (HTTP calls of
several seconds), and an open transaction holds back the snapshot xmin the change feed waits for, so no change
committed meanwhile could be listed to anybody. A session lock needs no open transaction, and PostgreSQL drops it
with the connection, so a worker that dies mid-delivery never leaves it held.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

log = logging.getLogger(__name__)

# The lock's first key, so webhook ids never meet the area ids hexindex.build locks on (one bigint key: first
# key 0 for any id below 2**32).
LOCK_NAMESPACE = 0x57484B


@contextmanager
def delivery_lock(webhook_id: int) -> Iterator[bool]:
    """True when this process now delivers for the webhook, False when another one already does."""
    with connection.cursor() as db:
        db.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, webhook_id])
        held = db.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as db:
                    db.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, webhook_id])
            except DatabaseError:  # the connection is gone, and the lock with it
                log.warning("could not release the delivery lock of webhook %s", webhook_id, exc_info=True)

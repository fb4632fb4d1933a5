"""PostgreSQL session advisory locks for deliveries:

- one delivery per webhook at a time, so its changes go out in order (`delivery_lock`);
- at most WEBHOOKS_PARTNER_CONCURRENCY requests to one partner's webhooks at a time across all workers
  (`partner_slot`: a semaphore of that many locks), so a partner whose receivers are slow holds at most that many
  worker processes, and everyone else's deliveries (and the other queues' tasks) still find free ones.

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
# A partner's slots: first key PARTNER_SLOTS_NAMESPACE + slot number, second key the partner's id.
PARTNER_SLOTS_NAMESPACE = 0x57500000


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


@contextmanager
def partner_slot(partner_id: int, *, slots: int) -> Iterator[bool]:
    """True when this process now holds one of the partner's `slots` slots, False when all are taken.

    The expiry is PostgreSQL's: a worker that dies or is killed at its time limit loses its session, and the slot
    with it, so no slot is ever held by nobody."""
    held = None
    with connection.cursor() as db:
        for slot in range(slots):
            db.execute("SELECT pg_try_advisory_lock(%s, %s)", [PARTNER_SLOTS_NAMESPACE + slot, partner_id])
            if db.fetchone()[0]:
                held = slot
                break
    try:
        yield held is not None
    finally:
        if held is not None:
            try:
                with connection.cursor() as db:
                    db.execute("SELECT pg_advisory_unlock(%s, %s)", [PARTNER_SLOTS_NAMESPACE + held, partner_id])
            except DatabaseError:
                log.warning("could not release delivery slot %s of partner %s", held, partner_id, exc_info=True)

"""Waiting for the change feed in tests. The feed lists a change only once every transaction in the PostgreSQL
cluster that started before it has ended (areas/changes.py, the cluster-wide xmin): `make test` runs on a cluster
of its own (ops/test.sh), so only this test run's own transactions (a worker's, a live server's) can hold it back,
and only for a moment."""

import time

from django.db import connection


def feed_settled(timeout: float = 30.0) -> None:
    """Wait until the feed lists everything committed so far (outside any test transaction)."""
    with connection.cursor() as db:
        db.execute("SELECT txid_current()")
        now = db.fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            db.execute("SELECT txid_snapshot_xmin(txid_current_snapshot())")
            if db.fetchone()[0] > now:
                return
            if time.monotonic() > deadline:
                db.execute(
                    "SELECT pid, datname, state, now() - xact_start, left(query, 200) FROM pg_stat_activity"
                    " WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL ORDER BY xact_start"
                )
                raise AssertionError(f"a transaction kept the feed from advancing for {timeout} s: {db.fetchall()}")
            time.sleep(0.05)

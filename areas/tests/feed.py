"""Waiting for the change feed in tests: it lists a change only once every transaction in the cluster that started
before it has ended, and other test runs on the same server may hold one open for a moment."""

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
            assert time.monotonic() < deadline, "a transaction elsewhere on the server kept the feed from advancing"
            time.sleep(0.05)

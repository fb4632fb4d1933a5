"""PostgreSQL helpers for the request path: statements prepared once per session, and the read replica a web
process sends what may be read there (settings.DATABASE_REPLICAS)."""

from __future__ import annotations

import contextlib
import logging
import os
import time

from django.conf import settings
from django.db import connections
from django.db.utils import DatabaseError

log = logging.getLogger(__name__)


def execute_prepared(cursor, name: str, types: str, sql: str, params: list) -> None:
    """EXECUTE a statement prepared once per database session (PREPARE survives transactions, not reconnections):
    for queries whose planning costs more than running them. Plans are generic (`plan_cache_mode` is set for the
    session the first time): their shape never depends on the values here, and a custom plan would be planned
    again on every call. The cursor may be of any database (connections[alias].cursor())."""
    db = cursor.db
    raw = db.connection
    session = (id(raw), raw.get_backend_pid())
    prepared = db.__dict__.setdefault("_prepared_statements", {})
    if prepared.get(name) != session:
        if session not in prepared.values():
            cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE {name} {types} AS {sql}")
        prepared[name] = session
    cursor.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)


class _Replicas:
    """This process's replica (one, chosen by its pid so processes spread over them) and when it failed last."""

    def __init__(self) -> None:
        self.failed_at: dict[str, float] = {}

    def alias(self) -> str | None:
        """The replica to read from now, or None (none configured, or it failed moments ago)."""
        aliases = settings.DATABASE_REPLICAS
        if not aliases:
            return None
        alias = aliases[os.getpid() % len(aliases)]
        failed_at = self.failed_at.get(alias)
        if failed_at is not None and time.monotonic() - failed_at < settings.DATABASE_REPLICA_RETRY_SECONDS:
            return None
        return alias

    def failed(self, alias: str, exc: DatabaseError) -> None:
        log.warning(
            "read replica %s failed (%s): reading the primary for %ss",
            alias,
            exc,
            settings.DATABASE_REPLICA_RETRY_SECONDS,
        )
        self.failed_at[alias] = time.monotonic()
        with contextlib.suppress(DatabaseError):
            connections[alias].close()  # a broken session is not reused


replicas = _Replicas()

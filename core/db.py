"""PostgreSQL helpers for the request path."""

from __future__ import annotations

from django.db import connection


def execute_prepared(cursor, name: str, types: str, sql: str, params: list) -> None:
    """EXECUTE a statement prepared once per database session (PREPARE survives transactions, not reconnections):
    for queries whose planning costs more than running them. Plans are generic (`plan_cache_mode` is set for the
    session the first time): their shape never depends on the values here, and a custom plan would be planned
    again on every call."""
    raw = connection.connection
    session = (id(raw), raw.get_backend_pid())
    prepared = connection.__dict__.setdefault("_prepared_statements", {})
    if prepared.get(name) != session:
        if session not in prepared.values():
            cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE {name} {types} AS {sql}")
        prepared[name] = session
    cursor.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)

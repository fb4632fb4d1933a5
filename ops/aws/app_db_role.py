"""Create or update the application's own PostgreSQL role. Run as the RDS master user before each migration.

The web, worker, beat and Flower tasks log in as this role: it reads and writes rows and nothing else (no DDL, no
role or database management), so a flaw in the application cannot drop tables or touch other roles. Migrations go
on running as the master user, which owns the tables; default privileges extend the grants to every table and
sequence a later migration creates.

The password comes from Secrets Manager (APP_DB_PASSWORD) and is set again on every run, so a rotated secret takes
effect on the next run. It reaches the server already hashed (SCRAM-SHA-256): no statement log can hold it.

    APP_DB_USER=... APP_DB_PASSWORD=... python ops/aws/app_db_role.py

with the master user's connection in the usual settings variables (DB_HOST, DB_USER, DB_PASSWORD, ...), as the
migrate task of ops/aws/servicearea.yaml has them.
"""

import os
import sys
from pathlib import Path

import django
from psycopg2 import sql
from psycopg2.extensions import encrypt_password

ROW_PRIVILEGES = sql.SQL("SELECT, INSERT, UPDATE, DELETE")
SEQUENCE_PRIVILEGES = sql.SQL("USAGE, SELECT")
POWERS_SQL = """
    SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls
        OR EXISTS (SELECT FROM pg_auth_members WHERE member = pg_roles.oid)
    FROM pg_roles WHERE rolname = %s
"""


def role_statements(*, role: str, database: str, password_hash: str, exists: bool) -> list[sql.Composable]:
    """What makes `role` a login that may only read and write the rows of `database`'s public schema."""
    role_id = sql.Identifier(role)
    return [
        # A new role has none of the powerful attributes; only a superuser could give them (checked below).
        sql.SQL("{} ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.SQL("ALTER" if exists else "CREATE"), role_id, sql.Literal(password_hash)
        ),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role_id),
        # PostgreSQL before 15 lets every role create tables in public; nobody but the owner needs to.
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role_id),
        sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA public TO {}").format(ROW_PRIVILEGES, role_id),
        sql.SQL("GRANT {} ON ALL SEQUENCES IN SCHEMA public TO {}").format(SEQUENCE_PRIVILEGES, role_id),
        # For what this (the migrating) role creates from now on.
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {} ON TABLES TO {}").format(ROW_PRIVILEGES, role_id),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {} ON SEQUENCES TO {}").format(
            SEQUENCE_PRIVILEGES, role_id
        ),
    ]


def main() -> None:
    role, password = os.environ["APP_DB_USER"], os.environ["APP_DB_PASSWORD"]
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    django.setup()
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if role == connection.settings_dict["USER"]:
            sys.exit(f"{role} is the user this connects as; the application's role must be another one")
        cursor.execute("SELECT current_database(), EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", [role])
        database, exists = cursor.fetchone()
        password_hash = encrypt_password(password, role, connection.connection, "scram-sha-256")
        for statement in role_statements(role=role, database=database, password_hash=password_hash, exists=exists):
            cursor.execute(statement.as_string(connection.connection))
        cursor.execute(POWERS_SQL, [role])
        if cursor.fetchone()[0]:
            sys.exit(f"{role} has powers beyond reading and writing rows (superuser, createrole, ...): remove them")
    print(f"{'updated' if exists else 'created'} role {role}: rows of {database} only")


if __name__ == "__main__":
    main()

"""Statements PostgreSQL parses and plans once per connection: for the few hand-written
statements every request of a hot path runs (the gate's scan: bench/README.md, phase f).

Django binds parameters on the client (psycopg's ClientCursor) and turns psycopg's automatic
preparation off, because a transaction-mode pooler in front of PostgreSQL may hand each
statement to another server connection, where a statement prepared elsewhere does not exist.
This cursor binds on the server and prepares each statement on its first run on a connection;
Django's own cursors are unchanged (a client-binding cursor never prepares). With
DATABASE_PREPARED_STATEMENTS off (behind PgBouncer in transaction mode before 1.21), it is a
plain Django cursor.

The statements pass through Django's cursor wrapper. When queries are logged (DEBUG,
CaptureQueriesContext, django_assert_num_queries) it is a plain Django cursor: the log then
shows each statement with its values, as Django's own.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connections
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.backends.utils import CursorWrapper
from psycopg.postgres import types
from psycopg.pq import Format

TIMESTAMPTZ_OID = types["timestamptz"].oid


def prepared_cursor(alias: str) -> CursorWrapper:
    """A cursor on database `alias` whose statements are prepared on PostgreSQL; use it as
    `with prepared_cursor(alias) as cursor:`. Only for statements of fixed text: psycopg keeps
    100 per connection, the least recently used are deallocated."""
    connection = connections[alias]
    if (connection.vendor != "postgresql" or connection.queries_logged
            or not getattr(settings, "DATABASE_PREPARED_STATEMENTS", True)):
        return connection.cursor()
    # What connection.cursor() does before it makes its cursor: the health check, connecting.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Prepare at first use; only server-binding cursors (this one) ever prepare.
        raw.prepare_threshold = 0
    with connection.wrap_database_errors:
        cursor = ServerBindingCursor(raw)
    # As Django's create_cursor(): timestamps in the connection's time zone.
    if raw.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone != connection.timezone:
        register_tzloader(connection.timezone, cursor)
    return connection.make_cursor(cursor)

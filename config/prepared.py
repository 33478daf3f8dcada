"""Cursors whose statements PostgreSQL plans once per connection (issue 19).

Django sends every query with its values bound on the client (psycopg's ClientCursor), so PostgreSQL parses and
plans each one afresh. For the reading loop's hot queries that costs more than running them: the frame lookup
(access, token and instance in one statement) took 1.0-1.5 ms to plan and 0.1-0.15 ms to execute (EXPLAIN
ANALYZE on the benchmark's data); prepared, its generic plan takes 0.01 ms to plan. ``prepared_cursor`` gives a
Django cursor (the same wrapper, so query counting, debug logging, error wrapping and execute_wrappers all see
the statement) whose statements are bound on the server and prepared on their first run; psycopg keeps the
prepared statements of a connection (the 100 most recent) for as long as Django keeps the connection
(CONN_MAX_AGE).

Only the queries that ask for it are prepared (``CompiledQuery``, the frame lookup): their SQL never changes and
their parameters are typed, whereas server-side binding for every ORM query would change how untyped parameters
are read. ``DATABASE_PREPARED_STATEMENTS=false`` turns it off, for a connection pooler in transaction mode that
cannot keep a session's prepared statements.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper


@functools.cache
def _cursor_class() -> type | None:
    """The preparing cursor class (made once), None without psycopg 3."""
    try:
        from django.db.backends.postgresql.base import ServerBindingCursor
    except ImportError:  # psycopg 2, or no PostgreSQL driver (the embedded SQLite default)
        return None

    class PreparingCursor(ServerBindingCursor):
        """Binds on the server and prepares every statement on its first execution."""

        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: Any = None) -> Any:
            return super().execute(query, params, prepare=True, binary=binary)  # type: ignore[misc]

    return PreparingCursor


# A threshold no statement reaches: psycopg prepares a statement automatically after this many runs, or at once
# when the cursor asks (PreparingCursor always does).
_ONLY_WHEN_ASKED = 2**31 - 1


class _LoggedPrepared(CursorDebugWrapper):
    """Django's debug cursor (DEBUG, or a test capturing queries), logging the SQL as sent: Django reads the
    executed SQL back from psycopg, which keeps none for a prepared statement's run."""

    @contextmanager
    def debug_sql(
        self, sql: Any = None, params: Any = None, use_last_executed_query: bool = False, many: bool = False
    ) -> Iterator[None]:
        with super().debug_sql(sql, params, use_last_executed_query=False, many=many):
            yield


@contextmanager
def prepared_cursor(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """``connection.cursor()``, prepared on PostgreSQL (psycopg 3) when DATABASE_PREPARED_STATEMENTS is on."""
    cursor_class = _cursor_class() if connection.vendor == "postgresql" else None
    if cursor_class is None or not getattr(settings, "DATABASE_PREPARED_STATEMENTS", True):
        with connection.cursor() as cursor:
            yield cursor
        return
    from django.db.backends.postgresql.base import TIMESTAMPTZ_OID
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    # As BaseDatabaseWrapper._cursor and the PostgreSQL backend's create_cursor, with another cursor class.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        if connection.connection.prepare_threshold is None:
            # psycopg prepares nothing, even when asked, while the threshold is None (Django's default). Django's own
            # cursors bind on the client and never prepare, so only this module's statements are affected.
            connection.connection.prepare_threshold = _ONLY_WHEN_ASKED
        raw = cursor_class(connection.connection)
        zone = connection.timezone
        if zone != connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone:
            register_tzloader(zone, raw)
        connection.validate_thread_sharing()
        wrapped = _LoggedPrepared(raw, connection) if connection.queries_logged else connection.make_cursor(raw)
    with wrapped as cursor:
        yield cursor

"""One process at a time creates the deployment's tables.

Every process (each API process, the worker, each `agora` command) creates the tables it uses if
they are missing, as eventsourcing's recorders do. Processes starting together would race:
- on PostgreSQL, in the catalogue: `CREATE OR REPLACE FUNCTION` fails with "tuple concurrently
  updated" and two `CREATE TABLE IF NOT EXISTS` can both try to insert the table's type;
- on SQLite, in the library's tracking recorder, which looks for its migration row before its
  transaction: two processes that both found none both insert it, and the second fails.
A lock per store makes them take turns: an advisory lock per schema on PostgreSQL, an flock on a
file beside the database on SQLite (an in-memory database has one process and needs none).
On PostgreSQL, whichever comes first also creates the schema (POSTGRES_SCHEMA) if it is missing.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import psycopg
from eventsourcing.persistence import InternalError, OperationalError
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.sql import SQL, Identifier

log = logging.getLogger(__name__)


@contextmanager
def creating(datastore: Any) -> Iterator[None]:
    """Hold the deployment's schema lock while inside: wrap each creation of tables."""
    if isinstance(datastore, SQLiteDatastore):
        if datastore.pool.is_sqlite_memory_mode:
            yield
            return
        with open(f"{datastore.pool.db_name}.schema.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield  # released when the file is closed
        return
    try:
        conn = psycopg.connect(**datastore.pool.kwargs, autocommit=True, application_name="agora schema")
    except psycopg.OperationalError as e:  # the database is down or starting: what the library's own recorders raise
        raise OperationalError(e) from e
    with conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"agora:{datastore.schema}:schema",))
        # Looked for first: creating one needs the CREATE privilege on the database, even when it exists.
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (datastore.schema,)).fetchone():
            try:
                conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(Identifier(datastore.schema)))
            except psycopg.errors.InsufficientPrivilege as e:
                raise ValueError(f"POSTGRES_SCHEMA: schema {datastore.schema!r} does not exist, and cannot be created: {e}") from None
        yield  # released with the connection


def qualified(datastore: Any, table: str) -> str:
    """`table` in the store's schema, for SQL written as text: quoted as the library quotes it (PostgreSQL
    folds an unquoted name to lower case, so a schema named with capitals would be another)."""
    schema = getattr(datastore, "schema", "")  # SQLite has none
    return '"' + schema.replace('"', '""') + '".' + table if schema else table


class InTurn:
    """A factory mixin: the library's recorders create their tables under the schema lock, and
    again once if the database ended the connection meanwhile (creating is idempotent)."""

    datastore: Any

    def application_recorder(self) -> Any:
        return self._in_turn(super().application_recorder)  # type: ignore[misc]

    def tracking_recorder(self, tracking_recorder_class: Any = None) -> Any:
        return self._in_turn(partial(super().tracking_recorder, tracking_recorder_class))  # type: ignore[misc]

    def _in_turn(self, make: Callable[[], Any]) -> Any:
        try:
            with creating(self.datastore):
                return make()
        except (InternalError, OperationalError) as e:
            # Seen under heavy load on PostgreSQL: the server ended a creating connection for being idle
            # in its transaction (the library's limit is 5 s) while the process stalled.
            log.warning("creating tables: %s; once more", e)
        with creating(self.datastore):
            return make()

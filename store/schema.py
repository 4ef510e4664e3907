"""One process at a time creates the deployment's tables.

Every process (each API process, the worker, each `agora` command) creates the tables it uses if
they are missing, as eventsourcing's recorders do. On PostgreSQL, processes starting together
would race in the catalogue: `CREATE OR REPLACE FUNCTION` fails with "tuple concurrently updated"
and two `CREATE TABLE IF NOT EXISTS` can both try to insert the table's type. An advisory lock,
per schema, makes them take turns. SQLite lets one writer in at a time already.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.persistence import OperationalError
from eventsourcing.sqlite import SQLiteDatastore


@contextmanager
def creating(datastore: Any) -> Iterator[None]:
    """Hold the deployment's schema lock (PostgreSQL) while inside: wrap each creation of tables."""
    if isinstance(datastore, SQLiteDatastore):
        yield
        return
    try:
        conn = psycopg.connect(**datastore.pool.kwargs, autocommit=True, application_name="agora schema")
    except psycopg.OperationalError as e:  # the database is down or starting: what the library's own recorders raise
        raise OperationalError(e) from e
    with conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"agora:{datastore.schema}:schema",))
        yield  # released with the connection

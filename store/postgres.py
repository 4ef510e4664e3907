"""eventsourcing's PostgreSQL module, with a recorder that can check other aggregates inside the insert
and records the data keys of the events' sealed text in the same transaction (`keys=`, store/keys.py)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing import postgres
from eventsourcing.persistence import IntegrityError, InterfaceError, Notification, OperationalError, StoredEvent
from eventsourcing.utils import Environment, EnvType, retry
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier

from store.codec import notification
from store.consistency import unchanged
from store.keys import NewKeys
from store.schema import InTurn


ATTEMPTS, WAIT = 10, 0.2  # an insert's, when its connection fails (as the library's)


class ColumnsInsert(postgres.PostgresAggregateRecorder):
    """Inserts a batch of events as four arrays, one per column, sent in binary. The library sends one array of
    its composite type, which psycopg writes out as text in Python and the server parses back: here that was
    28 to 31 µs of the writer's CPU per event, and 5 µs this way (and the insert's time in the table's lock
    a third of what it was)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The application recorder adds its RETURNING to this. unnest() yields the arrays' rows in order, as it does the library's.
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{originator_id}[], %b::bigint[], %b::text[], %b::bytea[])"
        ).format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name),
            originator_id=Identifier(self.datastore.originator_id_type),
        )

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any) -> None:
        columns = (
            [e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
            [e.topic for e in stored_events], [e.state for e in stored_events],
        )
        curs.execute(self.insert_events_statement, columns)


class ConsistentPostgresApplicationRecorder(postgres.PostgresApplicationRecorder, ColumnsInsert):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = (Identifier(self.datastore.schema), Identifier(self.events_table_name))
        self.versions_statement = SQL(
            "SELECT originator_id, MAX(originator_version) FROM {0}.{1} WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(*table)
        self.recorded_statement = SQL(
            "SELECT originator_id, originator_version, notification_id, state FROM {0}.{1} "
            "WHERE (originator_id, originator_version) IN (SELECT * FROM unnest(%s::{2}[], %s::bigint[]))"
        ).format(*table, Identifier(self.datastore.originator_id_type))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's
    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (), *, inclusive_of_start: bool = True
    ) -> Sequence[Notification]:
        """The library's query, its rows read in binary as tuples and made into notifications without the dataclass's
        checks: a rebuild reads every event, and so 1,000 rows take 4.8 ms, not the library's 11.6 ms."""
        where, params = [], []
        for condition, value in ((">=" if inclusive_of_start else ">", start), ("<=", stop)):
            if value is not None:
                where.append(SQL(f"notification_id {condition} %s"))
                params.append(value)
        if topics:
            where.append(SQL("topic = ANY(%s)"))
            params.append(list(topics))
        statement = SQL("SELECT notification_id, originator_id, originator_version, topic, state FROM {0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        if where:
            statement += SQL(" WHERE ") + SQL(" AND ").join(where)
        statement += SQL(" ORDER BY notification_id LIMIT %s")
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row, binary=True) as curs:
            curs.execute(statement, (*params, limit), prepare=True)
            return [notification(*row) for row in curs.fetchall()]

    def insert_events(
        self, stored_events: Sequence[StoredEvent], *, expect: Mapping[UUID, int] | None = None, keys: NewKeys | None = None, **_: Any
    ) -> Sequence[int] | None:
        """The library's transaction, sent as one round trip while the table is locked, then the commit.

        The table lock serialises every writer (so that readers never pass a gap filled in later). The
        library fetched each result as it went, so a writer held the lock through three or four round
        trips, each also waiting for its thread to get the GIL back from a busy event loop. Here the
        lock, the check of `expect` (after the lock: no writer can commit between it and ours), the data
        keys and the events are sent together and read after one sync; a failed check rolls it all back.
        Sustained POSTs on PostgreSQL: 3,000/s against 2,490/s (medians of six runs each, docs/benchmarks.md).
        """
        if not stored_events:
            return None
        attempts = 0  # that lost their connection: the server may have committed one all the same
        while True:
            try:
                return self._insert(stored_events, expect, keys)
            except (InterfaceError, OperationalError):  # tried again, as the library's @retry does
                attempts += 1
                if attempts == ATTEMPTS:
                    raise
                time.sleep(WAIT)
            except IntegrityError:
                # Refused after a dropped connection: perhaps by these very events, committed by the attempt whose
                # answer was lost (else a review note, say, was refused as a conflict, or recorded twice by a retry).
                recorded = self._recorded(stored_events) if attempts else None
                if recorded is None:
                    raise
                return recorded

    def _insert(self, stored_events: Sequence[StoredEvent], expect: Mapping[UUID, int] | None, keys: NewKeys | None) -> list[int]:
        with self.datastore.get_connection() as conn, conn.pipeline() as pipeline:
            with conn.transaction(), conn.cursor() as curs, conn.cursor(row_factory=tuple_row) as check, conn.cursor() as insert:
                self._lock_table(curs)
                self._notify_channel(curs)
                if expect:
                    check.execute(self.versions_statement, (list(expect),), prepare=True)
                if keys:
                    keys.insert(curs)
                ColumnsInsert._insert_stored_events(self, insert, stored_events)
                pipeline.sync()  # here a uniqueness violation raises, and everything is rolled back
                if expect:
                    versions = dict(check.fetchall())
                    unchanged(expect, versions.get)
                return [row["notification_id"] for row in insert.fetchall()]

    def _recorded(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """The positions of these events if the log holds them byte for byte (a transaction recorded them
        all or none), else None. Their bytes hold their time to the microsecond: no other writer's match."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self.recorded_statement, ([e.originator_id for e in stored_events], [e.originator_version for e in stored_events]))
            found = {(originator_id, version): (position, bytes(state)) for originator_id, version, position, state in curs.fetchall()}
        recorded = [found.get((e.originator_id, e.originator_version)) for e in stored_events]
        if any(r is None or r[1] != e.state for r, e in zip(recorded, stored_events, strict=True)):
            return None
        return [r[0] for r in recorded]  # type: ignore[index]


class Factory(InTurn, postgres.PostgresFactory):
    """Creates each recorder's tables one process at a time (store/schema.py)."""

    application_recorder_class = ConsistentPostgresApplicationRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        env = env if isinstance(env, Environment) else Environment(env=env)
        if env.get(self.POSTGRES_PASSWORD) is None and not env.get(self.POSTGRES_GET_PASSWORD_TOPIC):
            # libpq's own variable, else none (trust or peer authentication; a .pgpass file still applies)
            env = Environment(env.name, {**env, self.POSTGRES_PASSWORD: os.environ.get("PGPASSWORD", "")})
        schema = env.get(self.POSTGRES_SCHEMA) or ""
        if schema and not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):  # the library names it unquoted in places
            raise ValueError(f"POSTGRES_SCHEMA: {schema!r} must be lower-case letters, digits and underscores, starting with a letter or underscore")
        try:
            super().__init__(env)
        except OSError as e:  # a POSTGRES_* variable missing or unreadable: the library's message names it
            raise ValueError(str(e)) from None

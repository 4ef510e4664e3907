"""eventsourcing's SQLite module, with a recorder that rings in-process doorbells after each write,
can check other aggregates inside the insert (store/consistency.py) and records the data keys of
the events' sealed text in the same transaction (`keys=`, store/keys.py); its writers, in every
process, take turns in a queue of the kernel's."""

from __future__ import annotations

import fcntl
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing import sqlite
from eventsourcing.persistence import Notification, StoredEvent

from store.codec import notification
from store.consistency import unchanged
from store.keys import NewKeys
from store.schema import InTurn


class DoorbellSQLiteApplicationRecorder(sqlite.SQLiteApplicationRecorder):
    # Shared by every recorder in the process, so a follower wakes whichever application
    # instance wrote; a ring from another file costs one empty read. Weak: closed bells drop out.
    doorbells: weakref.WeakSet = weakref.WeakSet()

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        """An id that is no UUID (SQLite keeps ids as text, and one was written outside Agora) is kept as its text, so that
        what reads the log names that event unreadable (domain.core.read_log) rather than failing on its whole batch."""
        try:
            return super().convert_originator_id(originator_id)
        except ValueError:
            return originator_id

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (), *, inclusive_of_start: bool = True
    ) -> Sequence[Notification]:
        """The library's query, its rows read as tuples and made into notifications without the dataclass's checks:
        a rebuild reads every event, and the library's rows cost it three times what SQLite takes to read them."""
        where, params = [], []
        for condition, value in ((">=" if inclusive_of_start else ">", start), ("<=", stop)):
            if value is not None:
                where.append(f"rowid{condition}?")
                params.append(value)
        if topics:
            where.append(f"topic IN ({','.join('?' * len(topics))})")
            params += topics
        statement = f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name}"
        statement += f"{' WHERE ' if where else ''}{' AND '.join(where)} ORDER BY rowid LIMIT ?"
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None  # the library wraps the sqlite3 cursor
            c.execute(statement, (*params, limit))
            convert = self.convert_originator_id
            return [notification(i, convert(o), v, t, state) for i, o, v, t, state in c.fetchall()]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        ids = super().insert_events(stored_events, **kwargs)
        for bell in list(self.doorbells):
            bell.set()
        return ids

    def _insert_events(
        self, c: sqlite.SQLiteCursor, stored_events: Sequence[StoredEvent], *, expect: Mapping[UUID, int] | None = None,
        keys: NewKeys | None = None, **kwargs: Any,
    ) -> Sequence[int] | None:
        if keys:
            keys.insert(c)
        ids = super()._insert_events(c, stored_events, **kwargs)
        if expect:
            # Checked after inserting: the insert holds the database's one write lock, so this reads
            # the last committed state, and nothing can commit before this transaction does.
            select = f"SELECT MAX(originator_version) AS version FROM {self.events_table_name} WHERE originator_id = ?"

            def version_now(originator_id: UUID) -> int | None:
                c.execute(select, (originator_id.hex,))
                return c.fetchone()["version"]

            unchanged(expect, version_now)
        return ids


class Datastore(sqlite.SQLiteDatastore):
    """The library's, its write transactions taken in turn by every thread and process that writes the file.

    SQLite has one writer at a time, and one that finds the file locked polls with growing sleeps (1, 2, 5, 10
    ... ms): an API process's insert waited up to 111 ms beside the worker's. Here writers queue on an flock of
    `<file>.writers` instead, and the kernel wakes the next as the last lets go: POST p99 at 600/s fell from 73
    and 82 ms to 55 and 53 ms (docs/benchmarks.md). SQLite's own lock still decides; this only orders who asks.
    """

    writers: Any = None  # the open `<file>.writers` (None: an in-memory database, one process's)
    turn: threading.Lock  # flock is the process's, not a thread's: its threads queue here first

    def transaction(self, *, commit: bool) -> Any:
        return self._written() if commit and self.writers is not None else super().transaction(commit=commit)

    @contextmanager
    def _written(self) -> Iterator[Any]:
        with self.turn:
            fcntl.flock(self.writers, fcntl.LOCK_EX)
            try:
                with super().transaction(commit=True) as c:
                    yield c
            finally:
                fcntl.flock(self.writers, fcntl.LOCK_UN)

    def close(self) -> None:
        super().close()
        if self.writers is not None:
            self.writers.close()


class Factory(InTurn, sqlite.SQLiteFactory):
    """Creates each recorder's tables one process at a time (store/schema.py)."""

    application_recorder_class = DoorbellSQLiteApplicationRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.datastore.__class__ = Datastore  # the library makes its own; ours only adds the writers' queue
        if not self.datastore.pool.is_sqlite_memory_mode:
            self.datastore.turn = threading.Lock()
            self.datastore.writers = open(f"{self.datastore.pool.db_name}.writers", "a")  # noqa: SIM115 - closed with the datastore

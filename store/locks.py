"""The deployment's locks, across every process on one event store: one holder of each (a view's follower,
the mailer, the checkpointer, the clusterer) folds or sends; any other stands by and takes over when the
holder stops, dies, or (PostgreSQL) stops answering."""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.sqlite import SQLiteDatastore

log = logging.getLogger(__name__)

KEEPALIVE = 5.0  # seconds between the pings of a held lock's connection: the sign to a standby that its holder lives
STALLED = 30.0  # seconds a holder may go without answering before a standby ends its session and takes the lock

# The session holding an advisory lock (PostgreSQL shows its int8 key as two halves), and how long since it last ran a query.
_HOLDER = """
WITH k AS (SELECT hashtext(%s)::int8 AS k)
SELECT a.pid, extract(epoch FROM now() - a.state_change)::float8 AS idle, a.state
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, k
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::int8 = ((k.k >> 32) & 4294967295) AND l.objid::int8 = (k.k & 4294967295)
"""


@contextmanager
def exclusive(recorder: ApplicationRecorder, name: str, take_over: bool = False) -> Iterator[Callable[[], bool] | None]:
    """A lock named `name` across every process using this event store, held while inside if it
    was free. Yields None if it was not, else a check that it is still held. SQLite: an flock on
    a file beside the database; PostgreSQL: an advisory lock on a connection of its own, lost
    with that connection, which a thread pings every KEEPALIVE seconds. Given `take_over` (a standby's
    try), a holder whose session has not answered for STALLED seconds (its process stopped, or its
    host hung) has its session ended, and the lock is taken on a later try."""
    datastore = recorder.datastore  # type: ignore[attr-defined]
    if isinstance(datastore, SQLiteDatastore):
        with open(f"{datastore.pool.db_name}.{name}.lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            yield lambda: True  # held until the file is closed
        return
    key = f"agora:{datastore.schema}:{name}"
    with psycopg.connect(**datastore.pool.kwargs, autocommit=True, application_name=f"agora {name} lock") as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS held", (key,)).fetchone()["held"]:
            holder = conn.execute(_HOLDER, (key,)).fetchone()
            if take_over and holder and holder["state"] != "active" and holder["idle"] > STALLED:
                log.warning("%s: its holder (PostgreSQL session %d) has not answered for %.0f s: ending its session to take over", name, holder["pid"], holder["idle"])
                conn.execute("SELECT pg_terminate_backend(%s)", (holder["pid"],))
            yield None
            return
        guard, done = threading.Lock(), threading.Event()  # the connection serves one thread at a time, and none once done

        def held() -> bool:
            with guard:
                if done.is_set():  # the connection is closing: touching it from another thread could crash libpq
                    return False
                try:
                    conn.execute("SELECT 1")
                except psycopg.Error:
                    return False
                return True

        def keep_alive() -> None:  # however long the holder works between its own looks (a rebuild, say)
            while not done.wait(KEEPALIVE) and held():
                pass

        threading.Thread(target=keep_alive, name=f"lock-{name}", daemon=True).start()
        try:
            yield held
        finally:
            with guard:  # after the ping in flight, if any; and none after
                done.set()


def taken(recorder: ApplicationRecorder, name: str) -> bool:
    """Whether a process holds the deployment's lock `name` (`exclusive`): a look, never a wait."""
    with exclusive(recorder, name) as held:
        return held is None


def unanswered(recorder: ApplicationRecorder, name: str) -> float:
    """How long the holder of the deployment's lock `name` has not answered, in seconds (0: it answers,
    or none holds it; always 0 on SQLite, where a lock is a file's, held by a process on the same host)."""
    datastore = recorder.datastore  # type: ignore[attr-defined]
    if isinstance(datastore, SQLiteDatastore):
        return 0.0
    with psycopg.connect(**datastore.pool.kwargs, autocommit=True) as conn:
        holder = conn.execute(_HOLDER, (f"agora:{datastore.schema}:{name}",)).fetchone()
    return holder["idle"] if holder and holder["state"] != "active" else 0.0


def one_at_a_time(recorder: ApplicationRecorder, name: str, stop: threading.Event, serve: Callable[[Callable[[], bool]], None], standby: float) -> None:
    """Run `serve(held)` while this process holds the deployment's lock `name` (`exclusive`), until
    `stop`; while another process holds it, stand by and try again every `standby` seconds."""
    standing_by = False
    while not stop.is_set():
        with exclusive(recorder, name, take_over=True) as held:
            if held:
                log.info("%s: took over the lock, from a process that stopped or lost its session" if standing_by else "%s: holds the lock", name)
                standing_by = False
                serve(held)
                continue  # stopping, or the lock was lost
        if not standing_by:
            log.info("%s: another process holds the %s lock; standing by", name, name)
            standing_by = True
        stop.wait(standby)

"""The event store: eventsourcing's own SQLite and PostgreSQL modules, chosen by environment.

Defaults to an SQLite file in the data folder. `PERSISTENCE_MODULE=store.postgres` (or the
library's `eventsourcing.postgres`, which means the same here) with the library's `POSTGRES_*`
variables selects PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.persistence import ApplicationRecorder
from psycopg.sql import SQL, Identifier

from store.sqlite import DoorbellSQLiteApplicationRecorder

log = logging.getLogger(__name__)


def data_dir(path: str) -> Path:
    """The data folder, made if missing, readable by us only: it holds the keys to personal data."""
    folder = Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def secret_file(folder: Path) -> Path:
    return folder / "secret"


def local_secret(folder: Path) -> str:
    """The embedded default's secret (for AGORA_SECRET): made once, kept in the data folder, readable by us only."""
    path = secret_file(folder)
    if not path.exists():
        # Written whole under another name, then moved into place: never seen half-written.
        draft = path.with_name(f"secret.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        os.replace(draft, path)
    return path.read_text()


# Events are encoded with msgspec (store/codec.py), whichever store holds them.
CODEC = {"MAPPER_TOPIC": "store.codec:MsgspecMapper", "TRANSCODER_TOPIC": "store.codec:MsgspecTranscoder"}


# Ours extend the library's modules (store/sqlite.py, store/postgres.py); naming the library's means ours.
_MODULES = {"eventsourcing.sqlite": "store.sqlite", "eventsourcing.postgres": "store.postgres"}


def environment(folder: Path, given: dict[str, str] | None = None) -> dict[str, str]:
    """The event store settings: `given`, else the environment's, else the embedded SQLite file in `folder`."""
    env = dict(given) if given is not None else {} if os.environ.get("PERSISTENCE_MODULE") else {
        "PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(folder / "agora.sqlite")
    }
    module = env.get("PERSISTENCE_MODULE") or os.environ.get("PERSISTENCE_MODULE", "")
    if module in _MODULES:
        env["PERSISTENCE_MODULE"] = _MODULES[module]
    return env


class _Bell(threading.Event):
    """An event that knows when it was last set (time.monotonic), a time that only moves forward."""

    def __init__(self) -> None:
        super().__init__()
        self.rung_at = time.monotonic()
        self._at = threading.Lock()  # ringers race (a watcher thread, writers): the later time must win

    def set(self) -> None:
        self.ring_now()  # before waking anyone: a waiter never sees an older time than its ring's
        super().set()

    def ring_now(self) -> None:
        with self._at:
            self.rung_at = max(self.rung_at, time.monotonic())

    def take(self) -> float:
        """Clear it; when it last rang."""
        with self._at:
            self.clear()
            return self.rung_at


class Doorbell:
    """Rings when new events may be in the log, so followers wake at once instead of polling.

    Callers clear it before reading the log and wait on it after finding nothing new. Writes in
    this process ring it at once; other processes' writes within milliseconds, by the file's
    change counter (SQLite) or LISTEN/NOTIFY (PostgreSQL), watched by one thread per process
    for every doorbell on that store (`_watch`); the caller's timeout is the fallback.
    """

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self._rung = _Bell()
        self._watched: tuple[Callable[..., None], Hashable] | None = None
        if isinstance(recorder, DoorbellSQLiteApplicationRecorder):
            recorder.doorbells.add(self._rung)
            if not recorder.datastore.pool.is_sqlite_memory_mode:
                self._watched = (_changes, recorder.datastore.pool.db_name)
        elif hasattr(recorder, "channel_name"):  # PostgreSQL
            self._watched = (_notifications, (recorder.datastore, recorder.channel_name))
        if self._watched:
            _watch(*self._watched, self._rung)
        self._rung.ring_now()  # watched from now: a write before it rang no bell of ours

    def clear(self) -> float:
        """Clear it; returns when it last rang (or was made): a read of the log begun after then
        holds every write it rang for (it rings after each commit)."""
        return self._rung.take()

    def wait(self, timeout: float) -> bool:
        """Whether it rang (else the timeout passed, which counts as a ring: one may have been missed,
        say while a watcher reconnected, so the next read must look afresh)."""
        if self._rung.wait(timeout):
            return True
        self._rung.ring_now()
        return False

    def ring(self) -> None:
        self._rung.set()

    def close(self) -> None:
        self._rung.set()
        if self._watched:
            with _watching_lock:
                _watching.get(self._watched, set()).discard(self._rung)


# What this process watches (an SQLite file, a PostgreSQL channel), each by one thread, and the doorbells it rings.
_watching: dict[tuple[Callable[..., None], Hashable], set[_Bell]] = {}
_watching_lock = threading.Lock()
WATCH_INTERVAL = 0.005  # seconds between looks at an SQLite file's change counter
RETRY = 1.0  # seconds before a watcher that lost its database connects again


def _watch(watcher: Callable[..., None], what: Hashable, bell: _Bell) -> None:
    with _watching_lock:
        bells = _watching.get((watcher, what))
        if bells is None:
            bells = _watching[watcher, what] = set()
            threading.Thread(target=_watching_until_unused, args=(watcher, what, bells), name="doorbell", daemon=True).start()
        bells.add(bell)


def _watching_until_unused(watcher: Callable[..., None], what: Hashable, bells: set[_Bell]) -> None:
    """Run `watcher(what, ring, unused)` until its last doorbell is closed, connecting again after a failure."""

    def ring() -> None:
        with _watching_lock:
            for bell in bells:
                bell.set()

    def unused() -> bool:
        with _watching_lock:
            if bells:
                return False
            if _watching.get((watcher, what)) is bells:
                del _watching[watcher, what]
            return True

    while not unused():
        try:
            watcher(what, ring, unused)
        except Exception as e:  # noqa: BLE001 - say, the database is away: its doorbells fall back to their timeouts meanwhile
            log.warning("doorbell: %s; watching again in %.0f s", e, RETRY)
            time.sleep(RETRY)


def _changes(db_name: str, ring: Callable[[], None], unused: Callable[[], bool]) -> None:
    """Ring whenever another connection commits to the SQLite file: `PRAGMA data_version` changes
    then, and reading it costs microseconds (no I/O in WAL mode)."""
    with closing(sqlite3.connect(db_name)) as conn:
        last = None
        while not unused():
            try:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.OperationalError:  # say, the file is briefly busy: look again next time
                version = last
            if last is not None and version != last:
                ring()
            last = version
            time.sleep(WATCH_INTERVAL)


def _notifications(what: tuple[Any, str], ring: Callable[[], None], unused: Callable[[], bool]) -> None:
    """Ring on each NOTIFY of the PostgreSQL channel the library's recorder sends on its inserts,
    on a connection of its own (not one of the pool's, which the followers' reads need)."""
    datastore, channel = what
    with psycopg.connect(**datastore.pool.kwargs, autocommit=True, application_name="agora doorbell") as conn:
        conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
        while not unused():
            for _ in conn.notifies(timeout=0.2, stop_after=1):
                ring()

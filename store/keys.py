"""Data keys for crypto-shredding, kept beside the event store and never in the log or Redis.

Free text a person wrote is stored in events only as ciphertext under a key of its own. To
erase it, destroy the key: the immutable log keeps its shape and loses the data. A destroyed
key is deleted and its storage overwritten (SQLite: `secure_delete` and a WAL checkpoint;
PostgreSQL: `VACUUM FULL`, once no transaction that could still see the key is open), so it
cannot be read back from the database files either.

A key may also be found by a digest of what it protects (a person's email, to find their
signup again); such an index entry lives and dies with its key.

Each kind of key has a store (tables) of its own, so that scrubbing one, which locks its tables
while PostgreSQL rewrites them, never holds up the other: erasures, which anyone can ask for,
do not stall submissions.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import InfrastructureFactory, OperationalError
from eventsourcing.sqlite import SQLiteDatastore

from domain.sealed import Sealed
from store.schema import creating, qualified

log = logging.getLogger(__name__)
GET_MANY = 500  # keys per query: well under the parameters a statement may hold (SQLite: 32,766)
SCRUB_WAIT = 2.0  # seconds a PostgreSQL scrub waits for transactions older than its deletion to end

# What holds back the rows transaction %(xid)s deleted, the way PostgreSQL's own horizon does:
# another session's snapshot or running transaction (in this database, or a replication sender's),
# a prepared transaction, a replication slot. A (lazy) VACUUM's snapshot holds nothing back there,
# nor here; an ANALYZE's does.
OLDER_THAN = """
SELECT count(*) AS older FROM (
    SELECT unnest(ARRAY[backend_xmin, backend_xid]) AS x FROM pg_stat_activity
     WHERE (datname = current_database() OR datname IS NULL) AND pid <> pg_backend_pid()
       AND pid NOT IN (SELECT pid FROM pg_stat_progress_vacuum)
    UNION ALL SELECT transaction FROM pg_prepared_xacts WHERE database = current_database()
    UNION ALL SELECT xmin FROM pg_replication_slots
) AS holders WHERE age(x) >= age(%(xid)s::xid)
"""


class KeyStore:
    """A `domain.sealed.Vault` in tables beside the event store."""

    def __init__(self, factory: InfrastructureFactory[Any], name: str) -> None:
        """The keys in table `name`, and their index in `{name}_index`."""
        self.datastore = factory.datastore  # type: ignore[attr-defined]
        self.sqlite = isinstance(self.datastore, SQLiteDatastore)
        self.table, self.index = qualified(self.datastore, name), qualified(self.datastore, f"{name}_index")
        self.p = "?" if self.sqlite else "%s"  # each driver's parameter style
        blob = "BLOB" if self.sqlite else "BYTEA"
        with creating(self.datastore), self.datastore.transaction(commit=True) as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (key_id TEXT PRIMARY KEY, key {blob} NOT NULL)")
            c.execute(f"CREATE TABLE IF NOT EXISTS {self.index} (digest TEXT PRIMARY KEY, owner TEXT NOT NULL, key_id TEXT NOT NULL)")

    def seal(self, texts: list[tuple[str, str]]) -> list[Sealed]:
        """Each (associated, text) under a new random 256-bit key, recorded durably (in one
        transaction) before any ciphertext made with it is."""
        sealed, keys = self.seal_for_save(texts)
        if keys.rows:
            with self.datastore.transaction(commit=True) as c:
                keys.insert(c)
        return sealed

    def seal_for_save(self, texts: list[tuple[str, str]]) -> tuple[list[Sealed], NewKeys]:
        """As `seal`, but the new keys are recorded by the event store's save of the ciphertext
        (`app.save(..., keys=...)`), in the same transaction: one commit, and no key without its event."""
        keys = [(uuid.uuid4().hex, AESGCM.generate_key(bit_length=256)) for _ in texts]
        sealed = [Sealed(key_id, seal(key, text, associated)) for (key_id, key), (associated, text) in zip(keys, texts, strict=True)]
        return sealed, NewKeys(f"INSERT INTO {self.table} (key_id, key) VALUES ({self.p}, {self.p})", keys)

    def seal_with(self, key_id: str, text: str, associated: str) -> Sealed:
        key = self.get(key_id)
        if key is None:
            raise OperationalError(f"data key {key_id} is destroyed")
        return Sealed(key_id, seal(key, text, associated))

    def unseal(self, sealed: Sealed, associated: str) -> str | None:
        return self.unseal_many([(sealed, associated)])[0]

    def unseal_many(self, items: Sequence[tuple[Sealed, str]]) -> list[str | None]:
        keys = self.get_many({sealed.key_id for sealed, _ in items})
        return [_opened(s, keys[s.key_id], associated) if s.key_id in keys else None for s, associated in items]

    def find_or_create(self, digest: str, owner: str) -> tuple[str, str]:
        """The (owner, key id) indexed under `digest`; if there is none yet, a new key for `owner`.

        One transaction, so two concurrent callers with the same digest get the same owner and key.
        """
        key_id, p = uuid.uuid4().hex, self.p
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"INSERT INTO {self.index} (digest, owner, key_id) VALUES ({p}, {p}, {p}) ON CONFLICT (digest) DO NOTHING", (digest, owner, key_id))
            c.execute(f"SELECT owner, key_id FROM {self.index} WHERE digest = {p}", (digest,))
            row = c.fetchone()
            if row["key_id"] == key_id:
                c.execute(f"INSERT INTO {self.table} (key_id, key) VALUES ({p}, {p})", (key_id, AESGCM.generate_key(bit_length=256)))
        return row["owner"], row["key_id"]

    def owner(self, digest: str) -> str | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT owner FROM {self.index} WHERE digest = {self.p}", (digest,))
            row = c.fetchone()
        return row["owner"] if row else None

    def get(self, key_id: str) -> bytes | None:
        """The key, or None once it has been destroyed."""
        return self.get_many([key_id]).get(key_id)

    def nonce(self, key_id: str, label: str) -> bytes | None:
        key = self.get(key_id)
        # HMAC under the key, apart from its use by AES-GCM by the label's prefix.
        return None if key is None else hmac.new(key, b"agora nonce\0" + label.encode(), hashlib.sha256).digest()

    def get_many(self, key_ids: Collection[str]) -> dict[str, bytes]:
        """The keys not destroyed among `key_ids`, read in one transaction (a query per GET_MANY of them)."""
        ids, found = list(key_ids), {}
        if not ids:
            return found
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(ids), GET_MANY):
                chunk = ids[i : i + GET_MANY]
                c.execute(f"SELECT key_id, key FROM {self.table} WHERE key_id IN ({', '.join([self.p] * len(chunk))})", chunk)
                found.update((row["key_id"], bytes(row["key"])) for row in c.fetchall())
        return found

    def held(self) -> set[str]:
        """The ids of every key not destroyed (an audit checks the log's sealed values against them)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT key_id FROM {self.table}")
            return {row["key_id"] for row in c.fetchall()}

    def destroy(self, key_ids: Iterable[str], scrub: bool = True) -> None:
        with self.datastore.transaction(commit=True) as c:
            if self.sqlite:
                c.execute("PRAGMA secure_delete = ON")
            rows = [(k,) for k in key_ids]
            c.executemany(f"DELETE FROM {self.table} WHERE key_id = {self.p}", rows)
            c.executemany(f"DELETE FROM {self.index} WHERE key_id = {self.p}", rows)
            if self.sqlite:
                deleted_by = None
            else:
                c.execute("SELECT pg_current_xact_id() AS xid")
                deleted_by = str(int(str(c.fetchone()["xid"])) & 0xFFFFFFFF)  # as the 32-bit xid the catalogue shows
        if not scrub:
            return
        if deleted_by is None:
            self._scrub_sqlite()
        else:
            self._scrub_postgres(deleted_by)

    def _scrub_sqlite(self) -> None:
        """Overwrite the storage the deleted keys occupied; raises if that could not be done now."""
        conn = sqlite3.connect(self.datastore.pool.db_name, uri=True)
        try:
            (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        if busy:
            raise OperationalError("The key store is busy; destroy again to finish scrubbing.")

    def _scrub_postgres(self, deleted_by: str) -> None:
        """Rewrite the tables without the rows transaction `deleted_by` deleted; raises if that could not be done now.

        VACUUM FULL copies a deleted row that a transaction older than the delete may still see (a
        backup's snapshot, a long read), so those must have ended first. Newer ones see the delete."""
        with self.datastore.get_connection() as conn:
            deadline = time.monotonic() + SCRUB_WAIT
            while conn.execute(OLDER_THAN, {"xid": deleted_by}).fetchone()["older"]:
                if time.monotonic() > deadline:
                    raise OperationalError(
                        "A transaction older than the deletion is still open and may read the deleted keys; destroy again to finish scrubbing."
                    )
                time.sleep(0.05)
            conn.execute(f"VACUUM FULL {self.table}")
            conn.execute(f"VACUUM FULL {self.index}")


class NewKeys:
    """Keys not yet recorded; the recorder inserts them inside the transaction that records the events (store/sqlite.py, store/postgres.py)."""

    def __init__(self, statement: str, rows: list[tuple[str, bytes]]) -> None:
        self.statement = statement
        self.rows = rows

    def insert(self, cursor: Any) -> None:
        if self.rows:
            cursor.executemany(self.statement, self.rows)


def seal(key: bytes, plaintext: str, associated: str) -> bytes:
    """AES-256-GCM: a random 96-bit nonce, then the ciphertext with its tag."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), associated.encode())


def unseal(key: bytes, sealed: bytes, associated: str) -> str:
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], associated.encode()).decode()


def _opened(sealed: Sealed, key: bytes, associated: str) -> str | None:
    """The text, or None, logged, if its key does not open it: the key store was altered outside Agora
    (a key swapped or overwritten). Read as unreadable, not as an error: one damaged key must not fail
    every page that shows the text, nor stall the clusterer, which reads every text."""
    try:
        return unseal(key, sealed.data, associated)
    except InvalidTag:
        log.error("key %s does not open the value sealed under it (%s): the key store was altered outside Agora", sealed.key_id, associated)
        return None

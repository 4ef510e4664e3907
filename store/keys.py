"""Data keys for crypto-shredding, kept beside the event store and never in the log or Redis.

Free text a person wrote is stored in events only as ciphertext under a key of its own. To
erase it, destroy the key: the immutable log keeps its shape and loses the data. A destroyed
key is deleted and its storage overwritten (SQLite: `secure_delete` and a WAL checkpoint;
PostgreSQL: `VACUUM FULL`), so it cannot be read back from the database files either.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import InfrastructureFactory, OperationalError
from eventsourcing.sqlite import SQLiteDatastore

_TABLE = "data_keys"


class KeyStore:
    def __init__(self, factory: InfrastructureFactory[Any]) -> None:
        self.datastore = factory.datastore  # type: ignore[attr-defined]
        self.sqlite = isinstance(self.datastore, SQLiteDatastore)
        schema = getattr(self.datastore, "schema", "")
        self.table = f"{schema}.{_TABLE}" if schema else _TABLE
        self.p = "?" if self.sqlite else "%s"  # each driver's parameter style
        blob = "BLOB" if self.sqlite else "BYTEA"
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (key_id TEXT PRIMARY KEY, key {blob} NOT NULL)")

    def create(self, key_ids: Iterable[str]) -> dict[str, bytes]:
        """New random 256-bit keys, recorded durably before any ciphertext made with them is."""
        keys = {key_id: AESGCM.generate_key(bit_length=256) for key_id in key_ids}
        if keys:
            with self.datastore.transaction(commit=True) as c:
                c.executemany(f"INSERT INTO {self.table} (key_id, key) VALUES ({self.p}, {self.p})", list(keys.items()))
        return keys

    def get(self, key_id: str) -> bytes | None:
        """The key, or None once it has been destroyed."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT key FROM {self.table} WHERE key_id = {self.p}", (key_id,))
            row = c.fetchone()
        return bytes(row["key"]) if row else None

    def destroy(self, key_ids: Iterable[str]) -> None:
        with self.datastore.transaction(commit=True) as c:
            if self.sqlite:
                c.execute("PRAGMA secure_delete = ON")
            c.executemany(f"DELETE FROM {self.table} WHERE key_id = {self.p}", [(k,) for k in key_ids])
        self._scrub()

    def _scrub(self) -> None:
        """Overwrite the storage the deleted keys occupied; raises if that could not be done now."""
        if self.sqlite:
            conn = sqlite3.connect(self.datastore.pool.db_name, uri=True)
            try:
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.close()
            if busy:
                raise OperationalError("The key store is busy; destroy again to finish scrubbing.")
            return
        with self.datastore.get_connection() as conn:
            conn.execute(f"VACUUM FULL {self.table}")


def seal(key: bytes, plaintext: str, associated: str) -> bytes:
    """AES-256-GCM: a random 96-bit nonce, then the ciphertext with its tag."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), associated.encode())


def unseal(key: bytes, sealed: bytes, associated: str) -> str:
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], associated.encode()).decode()

"""The ledger: the Merkle tree of the event log and its signed checkpoints, in tables beside the event store.

Every event of the notification log is a leaf, indexed by its order in the log (positions may
have gaps: a rolled-back insert on PostgreSQL skips an id). The tables hold each leaf's position
and hash, the hash of every complete subtree (so appending costs O(log n) and a proof O(log n)
lookups, never a rebuild), the signed checkpoints, the public keys that signed them, and an
index from a response's receipt hash to its leaf (for a respondent's inclusion proof).

One writer at a time (the checkpointer, under a lock) appends; anyone reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.utils import get_topic
from psycopg.rows import tuple_row

from audit import merkle
from audit.merkle import Frontier
from audit.signing import Verifier
from domain.errors import LedgerDamaged
from domain.consultations.response import Response
from store.schema import creating, qualified

RESPONSE = get_topic(Response.Submitted)

# A stored record as the leaf hashes it: (position, originator id's 16 bytes, version, topic, state).
Record = tuple[int, bytes, int, str, bytes]


def unbound(record: Record | None, position: int, receipt_hash: str, leaf: bytes) -> str | None:
    """Why `record`, the event at `position` where the receipt index sends a receipt, is not that receipt's
    leaf; None if it is a response holding that receipt hash and hashing to that leaf. An index rewritten to
    prove one response with another's leaf is caught here, and so is the response's event altered."""
    if record is None:
        return f"the event at position {position}, where the receipt index sends this receipt, is not in the log"
    if merkle.leaf_hash(merkle.canonical(*record)) != leaf:  # first: an altered event may hold anything
        return f"the event at position {position} no longer hashes to its leaf: the event, or the ledger's leaf, was altered since it was chained"
    if record[3] != RESPONSE or receipt_of(record[4]) != receipt_hash:
        return f"the receipt index sends this receipt to the event at position {position}, which does not hold it"
    return None


def records(recorder: ApplicationRecorder, after: int | None, limit: int) -> list[Record]:
    """The stored records past position `after` (None: from the very first, at whatever position, even 0 or
    below, where the log never puts one but an aggregate would still read it), in order, as plain tuples:
    read in bulk (chaining, verifying), the library's notification objects would cost more than the hashing."""
    datastore = recorder.datastore  # type: ignore[attr-defined]
    table = recorder.events_table_name  # type: ignore[attr-defined]
    if isinstance(datastore, SQLiteDatastore):
        # CAST: a state stored as text (written outside Agora) is hashed as its bytes, not refused by the hashing;
        # COALESCE: a topic or state set to NULL (the library's schema allows it) is hashed as empty, so verify names it.
        where = "" if after is None else "WHERE rowid > ?"
        query = (
            f"SELECT rowid, originator_id, originator_version, COALESCE(topic, ''), COALESCE(CAST(state AS BLOB), X'') FROM {table} {where} "
            f"ORDER BY rowid LIMIT {int(limit)}"
        )
        with datastore.transaction(commit=False) as c:
            c.execute(query, () if after is None else (after,))
            rows = c.fetchall()
        try:
            return [(i, bytes.fromhex(o.replace("-", "")), v, t, s) for i, o, v, t, s in rows]  # the library keeps ids as text
        except (ValueError, AttributeError):  # an id that is no UUID (written outside Agora): hashed as its text, so verify names it
            return [(i, _id_bytes(o), v, t, s) for i, o, v, t, s in rows]
    query = (
        f"SELECT notification_id, uuid_send(originator_id), originator_version, COALESCE(topic, ''), COALESCE(state, ''::bytea) FROM {qualified(datastore, table)}"
        f" {'' if after is None else 'WHERE notification_id > %s'} ORDER BY notification_id LIMIT {int(limit)}"
    )
    with datastore.transaction(commit=False) as c:
        c.row_factory = tuple_row
        c.execute(query, () if after is None else (after,))
        return c.fetchall()  # uuid_send: the id's 16 bytes, without making UUID objects


def receipt_of(state: bytes) -> str | None:
    """The receipt hash a response's stored state holds; None if it cannot be read (the event is chained
    all the same: a leaf hashes stored bytes, but no receipt finds it)."""
    try:
        return _receipt.decode(state).receipt_hash
    except (msgspec.DecodeError, TypeError):
        return None


def _id_bytes(stored: object) -> bytes:
    try:
        return bytes.fromhex(str(stored).replace("-", ""))
    except ValueError:
        return str(stored).encode()


class OutOfOrder(Exception):
    """A position appeared at or below one the ledger has already chained."""


class Checkpoint(msgspec.Struct, frozen=True):
    seq: int  # 1, 2, …: checkpoints of the same size (a quiet stretch) are told apart by it
    size: int  # leaves in the tree
    root: bytes
    position: int  # the last log position in the tree (0 if none)
    time: datetime
    note: str  # the signed note (audit/signing.py)


class _Receipt(msgspec.Struct):
    receipt_hash: str


_receipt = msgspec.json.Decoder(_Receipt)
log = logging.getLogger(__name__)


class Ledger:
    def __init__(self, factory: InfrastructureFactory[Any], name: str = "ledger") -> None:
        self.datastore = factory.datastore  # type: ignore[attr-defined]
        self.sqlite = sqlite = isinstance(self.datastore, SQLiteDatastore)
        self.leaves_, self.nodes_, self.checkpoints_, self.receipts_, self.keys_ = (
            qualified(self.datastore, f"{name}_{t}") for t in ("leaves", "nodes", "checkpoints", "receipts", "keys")
        )
        self.p = "?" if sqlite else "%s"
        blob = "BLOB" if sqlite else "BYTEA"
        with creating(self.datastore), self.datastore.transaction(commit=True) as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {self.leaves_} (leaf BIGINT PRIMARY KEY, position BIGINT NOT NULL UNIQUE, hash {blob} NOT NULL)")
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self.nodes_} (level INTEGER NOT NULL, idx BIGINT NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (level, idx))"
            )
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self.checkpoints_} (seq BIGINT PRIMARY KEY, size BIGINT NOT NULL, root {blob} NOT NULL,"
                " position BIGINT NOT NULL, time TEXT NOT NULL, note TEXT NOT NULL)"
            )
            c.execute(f"CREATE TABLE IF NOT EXISTS {self.receipts_} (receipt_hash TEXT PRIMARY KEY, leaf BIGINT NOT NULL)")
            # Verify walks the index in leaf order, beside the leaves (audit/verify.py).
            c.execute(f"CREATE INDEX IF NOT EXISTS {name}_receipts_by_leaf ON {self.receipts_} (leaf, receipt_hash)")
            c.execute(f"CREATE TABLE IF NOT EXISTS {self.keys_} (vkey TEXT PRIMARY KEY, since TEXT NOT NULL)")
        self._frontier: Frontier | None = None  # the writer's, loaded on first append

    # The tree

    def head(self) -> tuple[int, int]:
        """(size, last position chained): (0, 0) when empty."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT leaf, position FROM {self.leaves_} ORDER BY leaf DESC LIMIT 1")
            row = c.fetchone()
        return (row["leaf"] + 1, row["position"]) if row else (0, 0)

    def leaves(self, start: int = 0, limit: int = 10_000) -> list[tuple[int, int, bytes]]:
        """(leaf index, position, leaf hash) from leaf `start` on, in order."""
        with self.datastore.transaction(commit=False) as c:
            if not self.sqlite:
                c.row_factory = tuple_row
            c.execute(f"SELECT leaf, position, hash FROM {self.leaves_} WHERE leaf >= {self.p} ORDER BY leaf LIMIT {int(limit)}", (start,))
            return c.fetchall()  # rows of (leaf, position, hash): BLOB and BYTEA both read as bytes

    def level(self, level: int, start: int = 0, limit: int = 10_000) -> list[tuple[int, bytes]]:
        """(index, hash) of the stored subtrees of `level` (0: the leaves) from index `start` on, in order."""
        table, index, where = (self.leaves_, "leaf", "") if level == 0 else (self.nodes_, "idx", f"level = {int(level)} AND ")
        with self.datastore.transaction(commit=False) as c:
            if not self.sqlite:
                c.row_factory = tuple_row
            c.execute(f"SELECT {index}, hash FROM {table} WHERE {where}{index} >= {self.p} ORDER BY {index} LIMIT {int(limit)}", (start,))
            return c.fetchall()  # rows of (index, hash), as `leaves`

    def node_counts(self) -> list[tuple[int, int, int, int]]:
        """(level, how many, the highest index, the leaves) of the stored subtrees of each level above the leaves,
        and the leaves counted in the same statement (a checkpointer appends both in one transaction)."""
        with self.datastore.transaction(commit=False) as c:
            if not self.sqlite:
                c.row_factory = tuple_row
            c.execute(f"SELECT level, COUNT(*), MAX(idx), (SELECT COUNT(*) FROM {self.leaves_}) FROM {self.nodes_} GROUP BY level ORDER BY level")
            return [tuple(row) for row in c.fetchall()]

    def leaf_of(self, receipt_hash: str) -> tuple[int, int, bytes] | None:
        """The leaf index, log position and leaf hash of the response with this receipt hash, as the
        receipt index says, once chained (`bound` checks the event there holds it)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT r.leaf, l.position, l.hash FROM {self.receipts_} r JOIN {self.leaves_} l ON l.leaf = r.leaf WHERE r.receipt_hash = {self.p}",
                (receipt_hash,),
            )
            row = c.fetchone()
        return (row["leaf"], row["position"], bytes(row["hash"])) if row else None

    def receipts(self, after: tuple[int, str] = (-1, ""), limit: int = 10_000) -> list[tuple[int, str]]:
        """The receipt index, (leaf index, receipt hash), in that order, past the row `after`."""
        with self.datastore.transaction(commit=False) as c:
            if not self.sqlite:
                c.row_factory = tuple_row
            c.execute(
                f"SELECT leaf, receipt_hash FROM {self.receipts_} WHERE (leaf, receipt_hash) > ({self.p}, {self.p})"
                f" ORDER BY leaf, receipt_hash LIMIT {int(limit)}", after,
            )
            return c.fetchall()  # rows of (leaf, receipt_hash), as `leaves`

    def hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The hash of each leaf range, folded from its stored complete subtrees."""
        wanted = {node for lo, hi in ranges for node in merkle.subtrees(lo, hi)}
        found = self._nodes(wanted)
        return [merkle.fold([found[n] for n in merkle.subtrees(lo, hi)]) for lo, hi in ranges]

    def root(self, size: int) -> bytes:
        return self.hashes([(0, size)])[0]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return self.hashes(merkle.inclusion_ranges(index, size))

    def consistency(self, old: int, new: int) -> list[bytes]:
        return self.hashes(merkle.consistency_ranges(old, new))

    def _nodes(self, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        leaves = [i for level, i in wanted if level == 0]
        inner = [(level, i) for level, i in wanted if level > 0]
        found: dict[tuple[int, int], bytes] = {}
        with self.datastore.transaction(commit=False) as c:
            if leaves:
                c.execute(f"SELECT leaf, hash FROM {self.leaves_} WHERE leaf IN ({', '.join([self.p] * len(leaves))})", leaves)
                found.update({(0, r["leaf"]): bytes(r["hash"]) for r in c.fetchall()})
            if inner:
                pairs = " OR ".join([f"(level = {self.p} AND idx = {self.p})"] * len(inner))
                c.execute(f"SELECT level, idx, hash FROM {self.nodes_} WHERE {pairs}", [x for node in inner for x in node])
                found.update({(r["level"], r["idx"]): bytes(r["hash"]) for r in c.fetchall()})
        missing = set(wanted) - set(found)
        if missing:
            raise LedgerDamaged(f"The ledger lacks tree nodes {sorted(missing)[:5]} (level, index): proofs that use them cannot be built.")
        return found

    def frontier(self) -> Frontier:
        size, _ = self.head()
        nodes = merkle.subtrees(0, size)
        found = self._nodes(nodes)
        return Frontier(size, [found[n] for n in nodes])

    def append(self, batch: Sequence[Record]) -> int:
        """Chain these records, in order, as the next leaves, with their subtrees and receipts, in one
        transaction. Raises OutOfOrder, chaining nothing, if a position is not above every chained one."""
        if not batch:
            return 0
        frontier = self._frontier or self.frontier()
        _, last = self.head()
        size = frontier.size
        leaves, nodes, receipts = [], [], []
        try:
            for record in batch:
                position, topic, state = record[0], record[3], record[4]
                if position <= last:
                    raise OutOfOrder(f"position {position} appeared after position {last} was chained")
                last = position
                h = merkle.leaf_hash(merkle.canonical(*record))
                leaves.append((frontier.size, position, h))
                nodes.extend(frontier.append(h))
                if topic == RESPONSE:
                    if (receipt := receipt_of(state)) is None:
                        log.error("ledger: the response at position %d holds no readable receipt hash; it is chained, but no receipt finds it", position)
                    else:
                        receipts.append((receipt, frontier.size - 1))
            with self.datastore.transaction(commit=True) as c:
                self._insert(c, self.leaves_, "leaf, position, hash", ("bigint", "bigint", "bytea"), leaves)
                self._insert(c, self.nodes_, "level, idx, hash", ("integer", "bigint", "bytea"), nodes)
                # The first leaf with a receipt keeps it: a copied event must not stall the chain.
                self._insert(c, self.receipts_, "receipt_hash, leaf", ("text", "bigint"), receipts, " ON CONFLICT (receipt_hash) DO NOTHING")
        except BaseException:
            self._frontier = None  # reload from the tables: they hold what was committed
            raise
        self._frontier = frontier
        return frontier.size - size

    def _insert(self, c: Any, table: str, columns: str, types: tuple[str, ...], rows: list[tuple[Any, ...]], then: str = "") -> None:
        """Insert rows: SQLite, one statement run for each; PostgreSQL, one statement for all (arrays), not a round trip per row."""
        if not rows:
            return
        if self.sqlite:
            c.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(types))}){then}", rows)
            return
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        c.execute(f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}){then}", [list(col) for col in zip(*rows, strict=True)])

    # Checkpoints

    def add_checkpoint(self, size: int, root: bytes, position: int, time: datetime, note: str) -> Checkpoint:
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"SELECT MAX(seq) AS seq FROM {self.checkpoints_}")
            seq = (c.fetchone()["seq"] or 0) + 1
            p = self.p
            c.execute(
                f"INSERT INTO {self.checkpoints_} (seq, size, root, position, time, note) VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                (seq, size, root, position, time.isoformat(), note),
            )
        return Checkpoint(seq, size, root, position, time, note)

    def checkpoints(self, after: int = 0, limit: int = 1000) -> list[Checkpoint]:
        return self._checkpoints(f"WHERE seq > {self.p} ORDER BY seq LIMIT {int(limit)}", (after,))

    def latest(self) -> Checkpoint | None:
        found = self._checkpoints("ORDER BY seq DESC LIMIT 1", ())
        return found[0] if found else None

    def covering(self, position: int) -> Checkpoint | None:
        """The first checkpoint whose tree includes this log position."""
        found = self._checkpoints(f"WHERE position >= {self.p} ORDER BY seq LIMIT 1", (position,))
        return found[0] if found else None

    def _checkpoints(self, where: str, params: tuple[Any, ...]) -> list[Checkpoint]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT seq, size, root, position, time, note FROM {self.checkpoints_} {where}", params)
            rows = c.fetchall()
        return [_checkpoint(r) for r in rows]

    # Keys

    def publish_key(self, vkey: str, since: datetime) -> None:
        """Record a verifier key that signs checkpoints (kept once)."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"INSERT INTO {self.keys_} (vkey, since) VALUES ({self.p}, {self.p}) ON CONFLICT (vkey) DO NOTHING", (vkey, since.isoformat()))

    def verifiers(self) -> list[Verifier]:
        """The keys that have signed checkpoints, read; LedgerDamaged names one that is no verifier key."""
        found = []
        for k in self.keys():
            try:
                found.append(Verifier.parse(k))
            except ValueError as e:
                raise LedgerDamaged(f"The ledger publishes {k[:60]!r} as a key that signs checkpoints, but it is no Ed25519 verifier key ({e}).") from None
        return found

    def keys(self) -> list[str]:
        """The verifier keys that have signed checkpoints, oldest first."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT vkey FROM {self.keys_} ORDER BY since, vkey")
            return [r["vkey"] for r in c.fetchall()]


def _checkpoint(row: Any) -> Checkpoint:
    try:
        return Checkpoint(row["seq"], row["size"], bytes(row["root"]), row["position"], datetime.fromisoformat(row["time"]), row["note"])
    except (TypeError, ValueError) as e:  # a field set by hand to what the checkpointer never writes
        raise LedgerDamaged(f"Checkpoint #{row['seq']} is stored with a field the checkpointer never writes ({e}).") from None

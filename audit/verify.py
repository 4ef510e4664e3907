"""Verification: recompute every leaf and the tree from the log, check every checkpoint, and say
`ok` or name the first bad position and why.

The same walk serves the live store and an exported bundle (audit/bundle.py). It reads the log
(stored records in position order) beside the ledger's leaves (leaf index, position, hash):

- **altered**: a record hashes differently than when it was chained (or, when the ledger's
  hashes were rewritten too, a checkpoint's root no longer matches the events it covers);
- **reordered**: a record sits at another chained position than its own (two swapped), or a
  position appears in the log below one already chained (or below 1), which was never chained itself;
- **missing**: a chained position is no longer in the log, though later ones are;
- **truncated**: the log (or the ledger) ends before what was chained or checkpointed;
- **forged**: a checkpoint whose signature does not verify, whose stored fields differ from what
  was signed, or that is not consistent with the one before it;
- **destroyed** (the live store only: a bundle holds no keys): the key of a sealed value is gone
  from the key stores, and no event records destroying it;
- **unshredded** (the live store only): a key an event records as destroyed is in the key stores.

Hashes cover stored bytes, ciphertext where a value is sealed, so a shredded key (recorded by
`ReviewCase.OriginalsShredded` or `Signup.Erased`) never breaks a proof; verify counts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from eventsourcing.utils import get_topic

from audit import merkle
from audit.ledger import RESPONSE, Ledger, Record, receipt_of, records
from audit.merkle import Frontier, canonical, leaf_hash
from audit.signing import Head, Verifier, parse_body
from domain.errors import LedgerDamaged
from domain.review.case import ReviewCase
from domain.signups.signup import Signup
from domain.staff.member import StaffMember

SHREDDING = {  # events recording destroyed keys, and the field naming them
    get_topic(ReviewCase.OriginalsShredded): "key_ids", get_topic(Signup.Erased): "key_id",
    get_topic(StaffMember.Erased): "key_ids", get_topic(StaffMember.PasswordChanged): "key_ids",
}
SEALED_KEY = re.compile(rb'"key_id":"([0-9a-f]{32})"')  # a sealed value's key, as the store writes a `Sealed`
MAX_MISMATCHES = 1000  # kept, past the first, to tell a swap from an alteration


class Problem(NamedTuple):
    kind: str  # altered, reordered, missing, truncated, forged, unsigned, destroyed, unshredded
    position: int | None
    detail: str


class Withheld(NamedTuple):
    """A record a bundle gives only as its leaf hash (a version 1 enrolment: personal data in clear)."""

    id: int
    hash: bytes


class SignedCheckpoint(NamedTuple):
    seq: int
    note: str
    stored: tuple[int, bytes, int, datetime] | None = None  # (size, root, position, time) as the ledger's columns say, if any


class Report(msgspec.Struct):
    events: int = 0  # records read from the log
    leaves: int = 0  # chained and checked
    checkpoints: int = 0
    pending: int = 0  # in the log past the last chained position
    unsigned: int = 0  # chained past the last signed checkpoint: no signature covers them yet
    shredded: int = 0  # keys the log records as destroyed
    sealed: int | None = None  # keys the log's sealed values name, every one held or recorded destroyed (None: not checked)
    withheld: int = 0
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.problem:
            where = f" at position {self.problem.position}" if self.problem.position is not None else ""
            return f"FAILED{where}: {self.problem.kind}: {self.problem.detail}"
        extra = f", {self.withheld} withheld (checked by hash only)" if self.withheld else ""
        if self.sealed is not None:
            extra += f", the {self.sealed} keys its sealed values name all held or recorded destroyed"
        return (
            f"ok: {self.events} events, {self.leaves} chained and matching, {self.checkpoints} checkpoints signed and consistent, "
            f"{self.unsigned} chained past the last signed checkpoint, {self.pending} not chained yet{extra}; {self.shredded} keys shredded (as their events record; hashes cover "
            "ciphertext, so shredding breaks no proof)"
        )


class Receipts:
    """The ledger's receipt index, walked beside the leaves: each chained response's receipt must send its
    respondent to its own leaf (the first, if a copy repeats it), and no entry anywhere else, or a respondent
    whose response was removed could be handed a valid proof of another's."""

    def __init__(self, rows: Iterator[tuple[int, str]], leaf_of: Callable[[str], int | None]) -> None:
        self.rows, self.leaf_of = rows, leaf_of
        self.row = next(rows, None)

    def check(self, index: int, position: int, rec: Any) -> Problem | None:
        response = not isinstance(rec, Withheld) and rec[3] == RESPONSE
        row = self.row
        if row is not None and row[0] > index and not response:
            return None  # most events: no entry here, and none due
        here = []
        while self.row is not None and self.row[0] <= index:
            here.append(self.row)
            self.row = next(self.rows, None)
        held = receipt_of(rec[4]) if response else None
        wrong = [receipt for leaf, receipt in here if leaf != index or receipt != held]
        if wrong:
            return Problem("forged", position, f"the ledger's receipt index sends receipt hash {wrong[0][:16]}… to leaf {index} (position {position}), whose event does not hold it: its respondent would be shown another event's proof")
        if held is not None and not here:
            first = self.leaf_of(held)
            # An earlier copy holds it, and keeps it; this very leaf, if it was chained after the index was read.
            if first is None or first > index:
                return Problem("missing", position, f"the receipt of the response at position {position} (leaf {index}) is not in the ledger's receipt index: its respondent's receipt finds no proof")
        return None

    def rest(self) -> Problem | None:
        """Once every leaf is walked: an entry left sends a receipt past the last leaf."""
        if self.row is None:
            return None
        return Problem("forged", None, f"the ledger's receipt index sends receipt hash {self.row[1][:16]}… to leaf {self.row[0]}, past the last leaf")


def verify(
    records: Iterable[Any],
    leaves: Iterable[tuple[int, int, bytes]],
    checkpoints: Sequence[SignedCheckpoint],
    verifiers: Sequence[Verifier],
    consistency: Callable[[int, int], list[bytes]] | None = None,
    held: Sequence[str] = (),
    nodes: Callable[[int], Iterator[tuple[int, bytes]]] | None = None,
    receipts: Receipts | None = None,
    named: Sequence[Verifier] = (),
) -> Report:
    """`records`: the log in position order, each (position, originator id's bytes, version, topic, state) or
    Withheld; `leaves`: the ledger's, in order; `consistency(old, new)`: a consistency proof between two
    checkpoints' sizes, checked against their roots; `held`: signed checkpoints (their notes) an auditor
    holds from elsewhere, which the tree must match too; `nodes(level)`: the ledger's stored subtrees of
    a level, (index, hash) in order, which proofs are built from: each must be the one the leaves make;
    `receipts`: the ledger's receipt index, which finds a respondent's leaf: each must be the one holding it;
    `named`: every key the log (or bundle) names, trusted or not, to say which signed a checkpoint none trusted does."""
    report = Report()
    heads = _checkpoints(checkpoints, verifiers, consistency, report, named)
    if not report.problem:
        own = {(h.size, h.root) for _, h in heads}  # one held that is also the log's own is counted once
        given = _held(held, verifiers, report)
        yours = {(h.size, h.root) for _, h in given}
        heads = sorted([*heads, *(h for h in given if (h[1].size, h[1].root) not in own)], key=lambda h: h[1].size)  # stable: the log's own first
    if report.problem:
        return report
    frontier = Frontier()
    due = iter(heads)
    head = next(due, None)
    since = 0  # the first position after the last checkpoint matched
    since_yours = 0  # the same, of the checkpoints held elsewhere: whoever rewrote the log may have signed its own anew
    signed = 0  # the size of the last checkpoint matched
    recs = iter(records)
    rec = next(recs, None)
    mismatches: list[tuple[int, Any, bytes]] = []  # (position, record, ledger hash)
    levels: dict[int, Iterator[tuple[int, bytes]]] = {}  # the stored subtrees of each level, as far as compared
    misnode: Problem | None = None  # the first stored subtree that is not what the leaves make
    misreceipt: Problem | None = None  # the first entry of the receipt index that is wrong or missing
    problem: Problem | None = None
    shredded = 0

    def check_heads() -> Problem | None:
        nonlocal head, since, since_yours, signed
        start = since  # heads of one size (a quiet stretch, or one held elsewhere) cover the same events
        while head is not None and head[1].size == frontier.size:
            label, h = head
            if not mismatches and frontier.root() != h.root:
                if (h.size, h.root) in yours:  # the log's own checkpoints since the last one held may be signed anew
                    start = since_yours
                return Problem("altered", start or None, f"checkpoint {label} (size {h.size}) does not match the events it covers (positions {start or 1} to {h.position}): an event there was altered and its leaf rewritten")
            report.checkpoints += 1
            since, signed = h.position + 1, h.size
            if (h.size, h.root) in yours:
                since_yours = since
            head = next(due, None)
        return None

    problem = check_heads()
    if problem is None and rec is not None and rec[0] < 1:
        problem = Problem("reordered", rec[0], f"position {rec[0]} is in the log, below its first position (1): the log never puts an event there and the ledger never chains it, yet its aggregate reads it")
    previous = 0  # the position of the leaf before
    for index, position, stored in leaves if problem is None else ():
        if index != frontier.size:
            problem = Problem("missing", previous + 1, f"leaf {frontier.size} is gone from the ledger: it jumps from position {previous} to leaf {index} at position {position}")
            break
        previous = position
        if rec is not None and rec[0] < position:
            problem = Problem("reordered", rec[0], f"position {rec[0]} is in the log but was never chained, though position {position} after it was (leaf {index})")
            break
        if rec is None:
            problem = Problem("truncated", position, f"the log ends before position {position}, which was chained as leaf {index}{_covered(head)}")
            break
        if rec[0] > position:
            problem = Problem("missing", position, f"position {position} was chained as leaf {index} but is not in the log (the log goes on at {rec[0]})")
            break
        report.events += 1
        if isinstance(rec, Withheld):
            h, report.withheld = rec.hash, report.withheld + 1
        else:
            h = leaf_hash(canonical(*rec))
            shredded += len(destroyed(rec))
        if h != stored:
            mismatches.append((position, rec, stored))
            if len(mismatches) >= MAX_MISMATCHES:
                break
        if receipts is not None and misreceipt is None:
            misreceipt = receipts.check(index, position, rec)
        for level, index, made in frontier.append(stored):
            if nodes is not None and misnode is None:
                found = next(levels.get(level) or levels.setdefault(level, nodes(level)), None)
                if found is None or found[0] != index or found[1] != made:
                    misnode = _misnode(level, index, found)
        report.leaves += 1
        problem = check_heads()
        if problem:
            break
        rec = next(recs, None)
    else:
        if problem is None and head is not None and not mismatches:
            problem = Problem("truncated", None, (
                f"checkpoint {head[0]} covers {head[1].size} events up to position {head[1].position}, the ledger chains only "
                f"{frontier.size}: events it covers are missing (of a bundle: exported before that checkpoint, or cut off; "
                "a bundle exported since shows which)"
            ))
        if receipts is not None and misreceipt is None:
            misreceipt = receipts.rest()
    report.shredded = shredded
    if mismatches:
        report.problem = _mismatch(mismatches)
        return report
    if problem or misnode or misreceipt:
        report.problem = problem or misnode or misreceipt
        return report
    while rec is not None:  # past the last chained position: not chained yet
        report.events += 1
        report.pending += 1
        rec = next(recs, None)
    report.unsigned = report.leaves - signed
    # A checkpoint of the empty tree (the first one signed) covers nothing; events none covers, chained
    # or not, are only the word of whoever holds the store or wrote the bundle.
    if report.events and not signed:
        chained = f"any of the {report.leaves} chained events" if report.leaves else f"any of the {report.events} events, none of which is chained"
        report.problem = Problem("unsigned", None, f"no signed checkpoint covers {chained}: nothing shows they are as first recorded (the checkpointer chains and signs them within seconds of starting)")
    return report


def destroyed(rec: Record) -> list[str]:
    """The keys an event records as destroyed: none, for most, and none for bytes that are no such event (altered:
    the walk names them by their hash)."""
    field = SHREDDING.get(rec[3])
    if not field:
        return []
    try:
        value = msgspec.json.decode(rec[4])[field]
    except (msgspec.DecodeError, KeyError, TypeError):
        return []
    return value if isinstance(value, list) else [value]


class Keys:
    """The keys the log's sealed values name (with the first position naming each) and those its events record
    as destroyed (with the position recording it), gathered while the log is walked; then any gone from the key
    stores with no such record (text made unreadable outside the rules: a shredding, an erasure, a password change),
    and any recorded destroyed yet held (text readable again: a key table restored from an older backup), which no
    hash shows."""

    def __init__(self) -> None:
        self.named: dict[str, int] = {}
        self.destroyed: dict[str, int] = {}
        self.last: int | None = None  # the last position walked

    def walk(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            self._read(rec)
            yield rec

    def _read(self, rec: Record) -> None:
        for key in SEALED_KEY.findall(rec[4]):
            self.named.setdefault(key.decode(), rec[0])
        for key in destroyed(rec):
            self.destroyed.setdefault(key, rec[0])
        self.last = rec[0]

    def check(self, app: Any, held: Callable[[], set[str]]) -> Problem | None:
        """The first key named and neither `held` (read now) nor recorded destroyed; else the first recorded destroyed
        and held. A destruction is recorded before its key is deleted: one deleted since the walk is in the log's tail,
        read after the keys, and one recorded but not deleted yet when the keys were read is looked at again."""
        keys = held()
        unaccounted = self.named.keys() - keys - self.destroyed.keys()
        if unaccounted:
            for rec in log(app, after=self.last):
                self._read(rec)
            unaccounted -= self.destroyed.keys()
        if unaccounted:
            return _first_key(
                "destroyed", self.named, unaccounted,
                "key {key} of a value sealed at position {position} is gone from the key store, and no event records destroying it "
                "(a shredding, an erasure or a password change): what it sealed can no longer be read, and nothing says why",
            )
        kept = self.destroyed.keys() & keys
        if kept:
            kept &= held()
        if not kept:
            return None
        return _first_key(
            "unshredded", self.destroyed, kept,
            "key {key}, which the event at position {position} records as destroyed, is in the key store: what it sealed can be read "
            "again (a key table restored from an older backup, or a shredding not finished); `agora keys reshred` destroys it again",
        )


def _first_key(kind: str, positions: Mapping[str, int], keys: Collection[str], detail: str) -> Problem:
    """A problem with the key of `keys` at the lowest position, `detail` saying it (of {key} and {position}), and how many in all."""
    position, key = min((positions[k], k) for k in keys)
    more = f"; {len(keys)} keys in all" if len(keys) > 1 else ""
    return Problem(kind, position, detail.format(key=key, position=position) + more)


def _covered(head: tuple[int, Head] | None) -> str:
    return f", and checkpoint {head[0]} covers up to position {head[1].position}" if head else ""


def _mismatch(mismatches: list[tuple[int, Any, bytes]]) -> Problem:
    """The first mismatch, as a move (its record hashes right at another mismatched position) or an alteration."""
    position, rec, _ = mismatches[0]
    if not isinstance(rec, Withheld):
        for other, _, stored in mismatches[1:]:
            if merkle.leaf_hash(merkle.canonical(other, *rec[1:])) == stored:
                return Problem("reordered", position, f"the event at position {position} was chained at position {other}: the two were swapped or moved")
    return Problem("altered", position, f"the event at position {position} does not hash to its leaf in the ledger: the event was altered since it was chained, or its leaf was")


def pinned(verifiers: list[Verifier], held: Sequence[str]) -> list[Verifier]:
    """Given checkpoints an auditor holds, only the keys that signed them: a key the bundle (or the store)
    merely names could be a forger's, signing a rewritten tail. All of them if none signed one (verify says so)."""
    return [v for v in verifiers if any(v.open(note) for note in held)] or verifiers


def _held(notes: Sequence[str], verifiers: Sequence[Verifier], report: Report) -> list[tuple[str, Head]]:
    heads = []
    for i, note in enumerate(notes, 1):
        text = next((t for v in verifiers if (t := v.open(note)) is not None), None)
        if text is None:
            names = ", ".join(f"{v.name}+{v.hash.hex()}" for v in verifiers)
            report.problem = Problem(
                "forged", None, f"the checkpoint you hold (#{i} given) is signed by none of the keys checked against ({names}): "
                "if yours is genuine, the key checked against is not the one that signed the log",
            )
            return []
        heads.append((f"you hold (#{i} given)", parse_body(text)))
    return heads


def _checkpoints(
    checkpoints: Sequence[SignedCheckpoint], verifiers: Sequence[Verifier], consistency: Callable[[int, int], list[bytes]] | None,
    report: Report, named: Sequence[Verifier] = (),
) -> list[tuple[str, Head]]:
    heads: list[tuple[str, Head]] = []
    for expected, cp in enumerate(sorted(checkpoints, key=lambda c: c.seq), 1):
        if cp.seq != expected:  # numbered from 1 without gaps as they are added: one was deleted
            report.problem = Problem("missing", None, f"checkpoint #{expected} is gone (the checkpoints go on at #{cp.seq})")
            return []
        text = next((t for v in verifiers if (t := v.open(cp.note)) is not None), None)
        if text is None:
            other = next((v for v in named if v.open(cp.note) is not None), None)
            hint = (
                f": it is signed by {other.name}+{other.hash.hex()}, another key the log names; after a key rotation "
                "(`agora audit new-key`), give each key you trust with --key" if other else ""
            )
            report.problem = Problem("forged", None, f"checkpoint #{cp.seq}: its signature does not verify with the key checked against{hint}")
            return []
        head = parse_body(text)
        if cp.stored is not None and cp.stored != (head.size, head.root, head.position, head.time):
            report.problem = Problem("forged", None, f"checkpoint #{cp.seq}: the stored size, root, position or time differ from what was signed")
            return []
        if heads:
            prev_label, prev = heads[-1]
            if head.size < prev.size or head.position < prev.position:
                report.problem = Problem("forged", None, f"checkpoint #{cp.seq} is smaller than {prev_label} before it")
                return []
            try:
                proof = consistency(prev.size, head.size) if consistency is not None else None
            except LedgerDamaged as e:  # the ledger's nodes that prove it are gone: its tail cut, or one of them deleted
                report.problem = Problem("missing", None, f"checkpoint #{cp.seq} covers {head.size} events, but the ledger lacks what proves it consistent with {prev_label} before it: {e}")
                return []
            if proof is not None and not merkle.verify_consistency(prev.size, head.size, prev.root, head.root, proof):
                report.problem = Problem("forged", None, f"checkpoint #{cp.seq} is not consistent with {prev_label} before it")
                return []
        heads.append((f"#{cp.seq}", head))
    return heads


BATCH = 5000


def verify_store(
    app: Any, ledger: Ledger, verifiers: Sequence[Verifier], held: Sequence[str] = (), keys: Callable[[], set[str]] | None = None
) -> Report:
    """Verify the live store: its log against its ledger, every checkpoint and those `held` elsewhere, and given
    `keys` (the ids of the key stores' keys, read when called) that every sealed value's key is held or recorded destroyed."""
    checkpoints = []
    try:
        while batch := ledger.checkpoints(after=checkpoints[-1].seq if checkpoints else 0):
            checkpoints.extend(SignedCheckpoint(c.seq, c.note, (c.size, c.root, c.position, c.time)) for c in batch)
        named = ledger.verifiers()
    except LedgerDamaged as e:  # a checkpoint or key row written outside Agora
        return Report(problem=Problem("forged", None, str(e)))
    index = Receipts(_receipts(ledger), lambda receipt: found[0] if (found := ledger.leaf_of(receipt)) else None)
    sealed = Keys()
    report = verify(sealed.walk(log(app)), chained(ledger), checkpoints, verifiers, ledger.consistency, held, lambda level: _stored(ledger, level), index, named)
    if report.problem and report.problem.kind in ("forged", "missing") and report.problem.position is None:
        # A checkpoint that seems inconsistent or unprovable may be a stored subtree altered or gone on its proof's path.
        report.problem = _subtrees(ledger, ledger.head()[0]) or report.problem
    if report.ok:
        report.problem = _beyond(ledger)
    if report.ok and keys is not None:
        report.problem = sealed.check(app, keys)
        report.sealed = len(sealed.named)
    return report


def _beyond(ledger: Ledger) -> Problem | None:
    """A stored subtree past the tree's size: the walk compares those within it only. One where the tree will
    grow would stop the checkpointer (its node is taken), and one anywhere is not the ledger's own writing.
    Counted with the leaves in one statement: a checkpointer appending meanwhile adds both at once."""
    for level, count, last, size in ledger.node_counts():
        if count != size >> level or (count and last != count - 1):
            return Problem("forged", None, f"the ledger's tree holds {count} nodes at level {level}, up to index {last}, where its {size} leaves make {size >> level}: nodes were added to it")
    return None


def _subtrees(ledger: Ledger, size: int) -> Problem | None:
    """The first stored subtree that is not the hash of its two stored halves, or is gone."""
    level = 0
    while size >> (level + 1):
        children, parents = _stored(ledger, level), _stored(ledger, level + 1)
        for index in range(size >> (level + 1)):
            left, right, found = next(children, None), next(children, None), next(parents, None)
            if found is None or found[0] != index:
                return _misnode(level + 1, index, found)
            if left is None or right is None or (left[0], right[0]) != (2 * index, 2 * index + 1):
                return _misnode(level, 2 * index, None)
            if merkle.node_hash(left[1], right[1]) != found[1]:
                return _misnode(level + 1, index, found)
        level += 1
    return None


def _misnode(level: int, index: int, found: tuple[int, bytes] | None) -> Problem:
    span = f"level {level}, index {index} (leaves {index << level} to {((index + 1) << level) - 1})"
    if found is None or found[0] != index:
        return Problem("missing", None, f"the ledger's tree lacks its node at {span}: proofs that use it cannot be built")
    return Problem("altered", None, f"the ledger's tree node at {span} is not the hash of its two halves: proofs that use it fail")


def _stored(ledger: Ledger, level: int) -> Iterator[tuple[int, bytes]]:
    start = 0
    while batch := ledger.level(level, start, BATCH):
        yield from batch
        start = batch[-1][0] + 1


def _receipts(ledger: Ledger) -> Iterator[tuple[int, str]]:
    after = (-1, "")
    while batch := ledger.receipts(after, BATCH):
        yield from batch
        after = (batch[-1][0], batch[-1][1])


def log(app: Any, after: int | None = None) -> Iterator[Record]:
    """Every stored record past `after`, in position order; by default from the lowest, so one put at position 0
    or below (which the checkpointer never chains, but its aggregate reads) is seen, and named as never chained."""
    start = after
    while batch := records(app.recorder, start, BATCH):
        yield from batch
        start = batch[-1][0]


def chained(ledger: Ledger) -> Iterator[tuple[int, int, bytes]]:
    """The ledger's leaves as (leaf index, position, hash), in order."""
    start = 0
    while batch := ledger.leaves(start, BATCH):
        yield from batch
        start = batch[-1][0] + 1

"""The offline bundle: everything needed to verify the log, written by `agora audit export`.

One line per position of the log (events.ndjson), with the stored record exactly as hashed and
the event as the disclosure policy shows it; the checkpoints with the consistency proof from
the one before; the verifier key; a README. Lines whose stored bytes hold staff personal data in
clear (a staff member's enrolment of version 1: email and password hash) carry only their hash.

Verifying a bundle checks the tree and the checkpoints (audit/verify.py), then that each line's
readable `event` is what the disclosure policy shows of its stored bytes: a reader of the bundle
reads those, not the base64.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from audit import merkle
from audit.disclosure import AuditEvent, Unreadable, disclose, read, readable
from audit.signing import Verifier, parse_body
from audit.verify import Problem, Report, SignedCheckpoint, Withheld, chained, log, pinned, verify
from domain.consultations.response import Response
from domain.staff.member import StaffMember
from domain.topics import every_pinned
from store.codec import MsgspecMapper, MsgspecTranscoder

ENROLLED, STAFF = readable(StaffMember.Enrolled)
SUBMITTED = readable(Response.Submitted)[0]
FILES = ("events.ndjson", "checkpoints.ndjson", "key.txt", "README.md")

README = """# An Agora audit bundle

Exported by `agora audit export`; check it with `agora audit verify DIR`, or by reading docs/audit.md
of Agora and these files:

- events.ndjson: one line per position (of the log, or chained and since deleted from it), in order
  of position. Every line has `position`, `leaf` (its leaf index; null if not chained) and `leaf_hash`
  (hex, as chained; null if not chained); a field a line lacks is left out, not null. Then, by kind:
  - an event: `stored` (originator_id, originator_version, topic and state in base64: the bytes the
    leaf hashes) and `event` (the event as auditors read it; one this code cannot read reads
    `"type": "unreadable"` with only its topic, its `stored` carried all the same);
  - a staff enrolment of version 1 (email and password hash in clear): `"withheld": true`,
    `record_hash` (hex: the leaf hash recomputed at export) and `event`, no `stored`;
  - a position chained and since deleted from the log: those three fields only (verify fails on it:
    `missing`, or `truncated` if no later position is in the log).
- checkpoints.ndjson: each signed checkpoint (`seq`, `note`) with `consistency`, the proof (base64
  hashes) from the checkpoint before it.
- key.txt: the verifier key(s) that sign checkpoints; compare with the one the deployment publishes
  (`GET /audit/key`) and with checkpoints you hold from elsewhere.

Leaf: SHA-256(0x00 || position (8) || originator id (16) || version (8) || topic length (4) || topic ||
state length (4) || state), big-endian; node: SHA-256(0x01 || left || right); RFC 9162 tree shape.

`stored` carries in clear what `event` leaves out: a response's choice answers (and, in a response
of version 1, its free text) and its `receipt_hash`, the hex SHA-256 of the receipt's UTF-8 bytes (a
respondent finds their response by it, and so does anyone else holding the receipt); link and reset
hashes; report quotes' references and hashes. Only sealed values (free text, names, emails, password
hashes) are unreadable here, and staff names show in `actor_name` as they stood at export. Share
this bundle as you would the event log ("What a bundle discloses" in docs/audit.md of Agora).
"""


class Stored(msgspec.Struct):
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes  # base64 in JSON


class Line(msgspec.Struct, omit_defaults=True):
    position: int
    leaf: int | None
    leaf_hash: str | None  # hex
    stored: Stored | None = None
    withheld: bool = False
    record_hash: str | None = None  # hex, for a withheld line
    event: AuditEvent | None = None


class CheckpointLine(msgspec.Struct):
    seq: int
    note: str
    consistency: list[bytes]


class Record(NamedTuple):
    id: int
    originator_id: bytes
    originator_version: int
    topic: str
    state: bytes


def export(system: Any, out: Path) -> tuple[int, int]:
    """Write the bundle into `out` (made if missing, refused if it holds a bundle already); (lines, checkpoints)."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any((out / f).exists() for f in FILES):
        raise ValueError(f"{out} already holds a bundle; export into an empty folder")
    try:
        return _write(system, out)
    except BaseException:  # no half a bundle: `verify DIR` would call it no bundle, and a new export would refuse the folder
        for f in FILES:
            (out / f).unlink(missing_ok=True)
        raise


def _write(system: Any, out: Path) -> tuple[int, int]:
    app, ledger = system.app, system.ledger
    names = {entry.id: entry.name for entry in system.history.directory()}
    encoder = msgspec.json.Encoder()
    lines = 0
    with (out / "events.ndjson").open("wb") as f:
        for line in _lines(app, ledger, names, system.history.key_present):
            f.write(encoder.encode(line) + b"\n")
            lines += 1
    checkpoints = []
    while batch := ledger.checkpoints(after=checkpoints[-1].seq if checkpoints else 0):
        checkpoints.extend(batch)
    with (out / "checkpoints.ndjson").open("wb") as f:
        previous = 0
        for c in checkpoints:
            f.write(encoder.encode(CheckpointLine(c.seq, c.note, ledger.consistency(min(previous, c.size), c.size))) + b"\n")
            previous = c.size
    (out / "key.txt").write_text("".join(f"{k}\n" for k in ledger.keys()))
    (out / "README.md").write_text(README)
    return lines, len(checkpoints)


def _lines(app: Any, ledger: Any, names: dict[UUID, str], key_present: Any) -> Iterator[Line]:
    """The log and the ledger's leaves side by side, by position."""
    leaves = chained(ledger)
    leaf = next(leaves, None)
    for position, oid, version, topic, state in log(app):
        while leaf is not None and leaf[1] < position:  # chained, but gone from the log
            yield Line(leaf[1], leaf[0], leaf[2].hex())
            leaf = next(leaves, None)
        index, leaf_hex = (leaf[0], leaf[2].hex()) if leaf is not None and leaf[1] == position else (None, None)
        if index is not None:
            leaf = next(leaves, None)
        if len(oid) != 16:
            raise ValueError(f"The event at position {position} has an aggregate id that is no UUID ({oid[:40]!r}), which a bundle cannot carry: `agora audit verify` names it.")
        originator_id = UUID(bytes=oid)
        domain_event = read(app.mapper, StoredEvent(originator_id, version, topic, state))  # unreadable: the line says so, and carries its bytes
        event = disclose(domain_event, position, names, key_present)
        if isinstance(domain_event, StaffMember.Enrolled) and domain_event.clear is not None:
            record = merkle.leaf_hash(merkle.canonical(position, oid, version, topic, state))
            yield Line(position, index, leaf_hex, withheld=True, record_hash=record.hex(), event=event)
        else:
            yield Line(position, index, leaf_hex, Stored(originator_id, version, topic, state), event=event)
    while leaf is not None:
        yield Line(leaf[1], leaf[0], leaf[2].hex())
        leaf = next(leaves, None)


def verify_bundle(folder: Path, verifiers: list[Verifier] | None = None, held: Sequence[str] = ()) -> Report:
    """Verify a bundle; against `verifiers`, or the key(s) it carries, and the checkpoints `held` elsewhere."""
    missing = [f for f in FILES[:3] if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{folder} is not a bundle: it lacks {', '.join(missing)}")
    if verifiers is None:
        verifiers = carried(folder, held)
    decoder = msgspec.json.Decoder(CheckpointLine)
    checkpoints = []
    for raw in (folder / "checkpoints.ndjson").read_bytes().splitlines():
        if raw:
            try:
                checkpoints.append(decoder.decode(raw))
            except (msgspec.DecodeError, RecursionError) as e:
                return Report(problem=Problem("altered", None, f"checkpoint line {len(checkpoints) + 1} is not one an export writes: {e}"))
            if not as_written(raw, checkpoints[-1]):
                return Report(problem=Problem("altered", None, f"checkpoint line {len(checkpoints)} {NOT_AS_WRITTEN}"))
    signed = [SignedCheckpoint(c.seq, c.note) for c in checkpoints]
    by_sizes = _proofs_by_sizes(checkpoints, verifiers)
    try:
        report = verify(_records(folder), _leaves(folder), signed, verifiers, lambda old, new: by_sizes.get((old, new), []), held, named=carried(folder))
        if report.ok:
            report.problem = _misread(folder)
    except _OutOfOrder as e:  # say so, rather than what it breaks first (a leaf that seems gone)
        return Report(problem=Problem("altered", e.position, f"the line comes after position {e.previous}: an export writes one line per position, in order"))
    except _Unreadable as e:
        return Report(problem=Problem("altered", e.position, f"events.ndjson line {e.number} is not one an export writes: {e.error}"))
    return report


def carried(folder: Path, held: Sequence[str] = ()) -> list[Verifier]:
    """The keys a bundle names in its key.txt (pinned to those that signed checkpoints `held` elsewhere, if any)."""
    if not (folder / "key.txt").exists():
        raise ValueError(f"{folder} is not a bundle: it lacks key.txt")
    return pinned([Verifier.parse(k) for k in (folder / "key.txt").read_text().split()], held)


def _misread(folder: Path) -> Problem | None:
    """The first line whose `event` is not what the disclosure policy shows of its stored bytes, or
    that is withheld though it is not a version 1 enrolment (a staff member's first event, before any
    line version 1 never wrote, whose aggregate no other kind of line names). Offline, who an actor is called (staff
    names are sealed) and whether a key still exists cannot be known: those two are taken from the
    line itself, and an actor must have the same name on every line."""
    mapper = MsgspecMapper(MsgspecTranscoder())
    every_pinned()  # so that every stored topic resolves, whatever the caller imported
    names: dict[UUID, str | None] = {}
    # A withheld line is the exporter's word, so what is around it must fit what it claims to be: a staff member's
    # first event, before any line version 1 never wrote (a deployment never goes back to version 1).
    later: int | None = None  # the position of the first line written by a later version
    before: set[UUID] = set()  # the aggregates of the lines before it
    withheld: set[UUID] = set()  # the aggregates withheld lines begin
    for raw, line in _read(folder):  # in order of position, as verify has found
        if not as_written(raw, line):
            return Problem("altered", line.position, f"the line {NOT_AS_WRITTEN}")
        event = line.event
        if event is not None and event.actor is not None:
            name = names.setdefault(event.actor, event.actor_name)
            if name != event.actor_name:
                return Problem("altered", line.position, f"it names actor {event.actor} {event.actor_name!r}, earlier lines {name!r}")
        if event is not None and event.aggregate_id in withheld and event.aggregate != STAFF:
            return Problem("altered", line.position, f"its aggregate {event.aggregate_id} is a {event.aggregate}, though a withheld line claims it is a staff member's")
        if line.withheld:
            if line.stored is not None or line.record_hash is None:
                return Problem("altered", line.position, "a withheld line carries its record's hash, and no stored bytes")
            if event is None or (event.type, event.version, event.position, event.payload.get("contact", "")) != (ENROLLED, 1, line.position, None):
                return Problem("altered", line.position, "the line is withheld, though only a staff enrolment of version 1 (email and password hash in clear) is")
            if later is not None:
                return Problem("altered", line.position, f"the line is withheld as a version 1 enrolment, though a later version's event is recorded before it (position {later}), and a deployment never goes back")
            if event.aggregate_id in before:
                return Problem("altered", line.position, f"the line is withheld as a staff member's first event, though its aggregate {event.aggregate_id} is on earlier lines")
            withheld.add(event.aggregate_id)
        elif line.stored is not None:
            if line.record_hash is not None or event is None or _shown(line.position, line.stored, event, mapper) != msgspec.json.encode(event):
                return Problem("altered", line.position, "its readable `event` is not what its stored bytes say")
            if later is None and _after_version_1(event.type, line.stored):
                later, before = line.position, set()  # no withheld line may follow: none is looked up in it
        elif event is not None or line.leaf is None or line.record_hash is not None:
            return Problem("altered", line.position, "the line has no stored bytes: an export writes one only for an event chained and gone from the log, its leaf and nothing else")
        if event is not None and later is None:
            before.add(event.aggregate_id)
    return None


class _Versioned(msgspec.Struct):
    class_version: int = 1


def _after_version_1(kind: str, stored: Stored) -> bool:
    """Whether version 1 never wrote this event: a sealed staff enrolment (it enrolled in clear), or a response in a
    format after its own (2, tests/fixtures/store-v1.sqlite), as every response since is."""
    if kind == ENROLLED:
        return True
    if kind != SUBMITTED:
        return False
    try:
        return msgspec.json.decode(stored.state, type=_Versioned).class_version > 2
    except msgspec.DecodeError:
        return False


def _shown(position: int, stored: Stored, claimed: AuditEvent, mapper: MsgspecMapper) -> bytes:
    """The disclosed event of `stored` as JSON, with the actor's name and the keys' states `claimed`;
    `unreadable` if the bytes are no event of Agora's domain (a bundle never makes verify import anything else)."""
    unreadable = Unreadable(stored)
    event: Any = unreadable
    if stored.topic.startswith("domain."):
        try:
            cls = resolve_topic(stored.topic)
            if isinstance(cls, type) and issubclass(cls, DomainEvent):
                event = mapper.to_domain_event(StoredEvent(stored.originator_id, stored.originator_version, stored.topic, stored.state))
        except Exception:  # noqa: BLE001 - bytes that decode to no event of ours are, for this check, unreadable
            event = unreadable
    states = dict(_sealed(claimed.payload))
    names = {claimed.actor: claimed.actor_name} if claimed.actor else {}
    return msgspec.json.encode(disclose(event, position, names, lambda key_id: states.get(key_id) != "shredded"))


def _sealed(value: Any) -> Iterator[tuple[str, str]]:
    """(key id, state) of every sealed value shown in `value`."""
    if isinstance(value, Mapping):
        if set(value) == {"sealed", "state"}:
            yield value["sealed"], value["state"]
        for v in value.values():
            yield from _sealed(v)
    elif isinstance(value, list):
        for v in value:
            yield from _sealed(v)


def _proofs_by_sizes(checkpoints: list[CheckpointLine], verifiers: list[Verifier]) -> dict[tuple[int, int], list[bytes]]:
    """Each checkpoint's proof, keyed by (the size before it, its size) as its signed note says."""
    found: dict[tuple[int, int], list[bytes]] = {}
    previous = 0
    for c in sorted(checkpoints, key=lambda c: c.seq):
        text = next((t for v in verifiers if (t := v.open(c.note)) is not None), None)
        if text is None:
            continue  # verify reports it as forged
        size = parse_body(text).size
        found[(min(previous, size), size)] = c.consistency
        previous = size
    return found


class _Unreadable(Exception):
    """A line that does not decode as an export writes it: where, and why."""

    def __init__(self, number: int, position: int | None, error: Exception) -> None:
        super().__init__(number, position, error)
        self.number, self.position, self.error = number, position, error


def _read(folder: Path) -> Iterator[tuple[bytes, Line]]:
    decoder = msgspec.json.Decoder(Line)
    with (folder / "events.ndjson").open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield raw, decoder.decode(raw)
            except (msgspec.DecodeError, RecursionError) as e:  # RecursionError: nested past what a decoder follows
                raise _Unreadable(number, _position(raw), e) from None


def _position(raw: bytes) -> int | None:
    """The position a line that does not decode says it is at, if it says."""
    try:
        position = json.loads(raw).get("position")
    except (ValueError, AttributeError, RecursionError):
        return None
    return position if isinstance(position, int) else None


def as_written(raw: bytes, decoded: msgspec.Struct) -> bool:
    """Whether JSON (a bundle's line, a report someone holds) holds only what its decoded struct does:
    decoding drops a field it does not know, and a key given twice reads as its last; a reader of the
    file (jq, an editor) would see either."""
    try:
        return json.loads(raw, object_pairs_hook=_once) == msgspec.to_builtins(decoded)  # as JSON has them: base64, ids as text
    except (ValueError, RecursionError):
        return False


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("a key given twice")
    return found


NOT_AS_WRITTEN = "is not as an export writes it: a field it does not write, a key given twice, or a value written otherwise (a reader with jq or an editor would read what no hash covers)"


class _OutOfOrder(Exception):
    def __init__(self, position: int, previous: int) -> None:
        super().__init__(position, previous)
        self.position, self.previous = position, previous


def _ordered(folder: Path) -> Iterator[Line]:
    """The lines, each past the one before (else _OutOfOrder), each given once the next is read: two
    lines swapped are found before the first of them is checked (and seems to skip a leaf)."""
    held: Line | None = None
    for _, line in _read(folder):
        if held is not None:
            if line.position <= held.position:
                raise _OutOfOrder(line.position, held.position)
            yield held
        held = line
    if held is not None:
        yield held


def _records(folder: Path) -> Iterator[Any]:
    for line in _ordered(folder):
        if line.withheld and line.record_hash:
            yield Withheld(line.position, bytes.fromhex(line.record_hash))
        elif line.stored is not None:
            s = line.stored
            yield Record(line.position, s.originator_id.bytes, s.originator_version, s.topic, s.state)


def _leaves(folder: Path) -> Iterator[tuple[int, int, bytes]]:
    for line in _ordered(folder):
        if line.leaf is not None and line.leaf_hash is not None:
            yield line.leaf, line.position, bytes.fromhex(line.leaf_hash)


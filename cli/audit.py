"""`agora audit`: export the verifiable log as a bundle, verify it (or the live store), replay a view."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from audit.bundle import carried, export, verify_bundle
from audit.replay import view_at
from audit.signing import KEY_FILE, Verifier, load_or_make_key, parse_body
from domain.errors import LedgerDamaged
from audit.verify import Problem, Report, pinned, verify_store
from projections.live import VIEWS
from runtime import System


def register(sub: argparse._SubParsersAction, settings: Callable[[], object]) -> None:
    a = sub.add_parser("audit", help="the verifiable log: export, verify, replay").add_subparsers(required=True, dest="action", metavar="ACTION")
    e = a.add_parser("export", help="write a self-contained bundle of the log, its checkpoints and key")
    e.add_argument("--out", required=True, metavar="DIR", help="an empty (or new) folder")
    v = a.add_parser("verify", help="recompute the tree and check every checkpoint: of a bundle, or the live store")
    v.add_argument("dir", nargs="?", metavar="DIR", help="a bundle from `agora audit export` (default: the live store)")
    v.add_argument(
        "--key", action="append", default=[], metavar="VKEY",
        help="check checkpoints against this verifier key, repeatable: after `agora audit new-key`, give the old and the new (default: the bundle's, or the data folder's)",
    )
    v.add_argument(
        "--checkpoint", action="append", default=[], metavar="FILE",
        help="a signed checkpoint you hold from elsewhere (its note, as GET /audit/checkpoints gives it): the log must match it too (repeatable)",
    )
    a.add_parser(
        "new-key",
        help="publish this data folder's signing key as the log's, when the key that signed it is lost for good (the checkpointer refuses another key until then)",
    )
    r = a.add_parser("replay", help="print a view as it stood at a position of the log (JSON)")
    r.add_argument("view", metavar="VIEW", help=", ".join(VIEWS))
    r.add_argument("--at", type=int, metavar="POSITION", help="default: the head")
    for p in a.choices.values():
        p.set_defaults(run=lambda args: run(args, settings))


def run(args: argparse.Namespace, settings: Callable[[], object]) -> None:
    """`settings` are read only for the live store: a bundle is verified anywhere, with no deployment."""
    if args.action == "verify" and args.dir:
        folder, notes = Path(args.dir), held(args.checkpoint)
        if args.key:
            verifiers, source = [Verifier.parse(k) for k in args.key], "the keys given"
        else:
            verifiers, source = carried(folder, notes), "the key the bundle carries (compare it with a copy held elsewhere)"
        report = verify_bundle(folder, verifiers, notes)
        print(f"checked against {source}: {', '.join(f'{v.name}+{v.hash.hex()}' for v in verifiers)}")
        finish(report)
        return
    with System(settings()) as system:  # type: ignore[arg-type]
        if args.action == "export":
            lines, checkpoints = export(system, Path(args.out))
            print(f"exported {lines} events and {checkpoints} checkpoints to {args.out}")
        elif args.action == "verify":
            report, source = live(system, args.key, held(args.checkpoint))
            print(f"checked against {source}")
            if not system.app.head():  # `agora serve` records its consultations on start: a deployment's store is never empty
                sys.exit(f"agora: the store holds no events: is it the deployment's? (the data folder is {system.data_dir}; PERSISTENCE_MODULE and POSTGRES_* choose another store)")
            finish(report)
        elif args.action == "new-key":
            verifier = system.signer().verifier
            system.ledger.publish_key(verifier.vkey, datetime.now(UTC))
            print(f"published {verifier.vkey}: the checkpointer signs with it from its next checkpoint; tell those who hold the old one")
        else:
            sys.stdout.write(view_at(system.app, args.view, args.at).decode() + "\n")


def finish(report: Report) -> None:
    print(report)
    if not report.ok:
        sys.exit(1)


def held(files: list[str]) -> list[str]:
    """Each file's note as signed: one line ending per line, as `jq -r`, an editor or a mail client may have added or changed."""
    notes = []
    for f in files:
        try:
            text = Path(f).read_text()
        except OSError as e:
            raise ValueError(f"--checkpoint {f}: {e.strerror}") from None
        note = text.replace("\r\n", "\n").rstrip("\n") + "\n"
        try:
            parse_body(note.rpartition("\n\n")[0] + "\n")
        except ValueError as e:
            raise ValueError(f"--checkpoint {f}: not a signed checkpoint note ({e})") from None
        notes.append(note)
    return notes


def live(system: System, keys: Sequence[str] = (), held: Sequence[str] = (), published_only: bool = False) -> tuple[Report, str]:
    """Verify the live store: against `keys`, the data folder's key (under any name it signed with), or (if none,
    or `published_only`: `agora status`, after a new key too) the keys the store publishes."""
    try:
        published = system.ledger.verifiers()
    except LedgerDamaged as e:  # a key row written outside Agora
        return Report(problem=Problem("forged", None, str(e))), "the keys the store publishes"
    if keys:
        verifiers, source = [Verifier.parse(k) for k in keys], "the keys given"
    elif (system.data_dir / KEY_FILE).exists() and not published_only:
        public = load_or_make_key(system.data_dir / KEY_FILE).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        verifiers = [v for v in published if v.public == public] or [Verifier(system.settings.origin, public)]
        source = "the data folder's key"
    else:
        verifiers, source = pinned(published, held), "the keys the store publishes (compare them with a copy held elsewhere)"
    return verify_store(system.app, system.ledger, verifiers, held, system.keys_held), f"{source}: {', '.join(f'{v.name}+{v.hash.hex()}' for v in verifiers)}"


def status_line(system: System) -> tuple[str, bool]:
    """For `agora status`: the ledger's head, its last checkpoint, and whether the store verifies against it;
    and whether all is well (it verifies, and a checkpoint is signed when due)."""
    size, position = system.ledger.head()
    latest = system.ledger.latest()
    if latest is None:
        return f"ledger: {size} events chained (to position {position}), no checkpoint yet", True
    report, _ = live(system, published_only=True)
    verdict = "verifies against the keys it publishes" if report.ok else f"does NOT verify: {report}"
    line = (
        f"ledger: {size} events chained (to position {position}); last checkpoint #{latest.seq} (size {latest.size}) "
        f"at {latest.time.isoformat(timespec='seconds')}; the store {verdict}"
    )
    # One is signed every AGORA_CHECKPOINT_SECONDS even when nothing happens: an old one means none is being signed.
    age = (datetime.now(UTC) - latest.time).total_seconds()
    late = age > 2 * system.settings.checkpoint_seconds + 30
    if late:
        line += (
            f"\n  NO CHECKPOINT for {age:,.0f} s (one is due every {system.settings.checkpoint_seconds:g} s), "
            f"{system.app.head() - position} events past the last chained: is a checkpointer running (`agora work`)? its log says why not"
        )
    return line, report.ok and not late

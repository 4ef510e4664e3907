"""`audit.verify.verify` on a log built here: what a signed checkpoint proves, and what it does not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit.merkle import Frontier, canonical, leaf_hash
from audit.signing import Head, Signer, body
from audit.verify import SignedCheckpoint, verify

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_a_checkpoint_of_the_empty_tree_covers_nothing(tmp_path: Path) -> None:
    """The checkpointer signs one when it starts: kept alone, it must not vouch for leaves chained after it."""
    signer = Signer(tmp_path, "example.org/agora")
    records = [(p, uuid.uuid4().bytes, 1, "domain.x:Y", b"{}") for p in (1, 2, 3)]
    leaves = [(i, r[0], leaf_hash(canonical(*r))) for i, r in enumerate(records)]
    empty = SignedCheckpoint(1, signer.sign(body(Head(signer.verifier.name, 0, Frontier().root(), NOW, 0))))
    report = verify(records, leaves, [empty], [signer.verifier])
    assert report.problem is not None and report.problem.kind == "unsigned", report
    frontier = Frontier()
    for _, _, h in leaves:
        frontier.append(h)
    whole = SignedCheckpoint(2, signer.sign(body(Head(signer.verifier.name, 3, frontier.root(), NOW, 3))))
    report = verify(records, leaves, [empty, whole], [signer.verifier])
    assert report.ok and (report.checkpoints, report.unsigned) == (2, 0), report


def test_events_none_of_which_is_chained_or_signed_are_not_ok(tmp_path: Path) -> None:
    """A tester rewrote a bundle's answers, marked every line as not chained yet and dropped the
    checkpoints: nothing vouched for any event, and verify said ok."""
    signer = Signer(tmp_path, "example.org/agora")
    records = [(p, uuid.uuid4().bytes, 1, "domain.x:Y", b"{}") for p in (1, 2, 3)]
    report = verify(records, [], [], [signer.verifier])
    assert report.problem is not None and report.problem.kind == "unsigned" and "none of which is chained" in report.problem.detail, report
    assert verify([], [], [], [signer.verifier]).ok  # an empty log: nothing to vouch for


def signed(signer: Signer, records: list[tuple[int, bytes, int, str, bytes]], size: int) -> str:
    """A checkpoint of the first `size` records, signed."""
    frontier = Frontier()
    for r in records[:size]:
        frontier.append(leaf_hash(canonical(*r)))
    return signer.sign(body(Head(signer.verifier.name, size, frontier.root(), NOW, size)))


def rewritten_at(tmp_path: Path, position: int) -> tuple[Signer, list[Any], list[Any], list[Any], list[SignedCheckpoint]]:
    """Six events, the one at `position` rewritten by whoever holds the key: the original records, the
    rewritten ones, their leaves, and the log's own checkpoints (sizes 4 and 6) signed anew over them."""
    signer = Signer(tmp_path, "example.org/agora")
    ids = [uuid.uuid4().bytes for _ in range(6)]
    original = [(p, ids[p - 1], 1, "domain.x:Y", b'{"n":%d}' % p) for p in range(1, 7)]
    rewritten = [r if r[0] != position else (*r[:4], b'{"n":99}') for r in original]
    leaves = [(i, r[0], leaf_hash(canonical(*r))) for i, r in enumerate(rewritten)]
    own = [SignedCheckpoint(1, signed(signer, rewritten, 4)), SignedCheckpoint(2, signed(signer, rewritten, 6))]
    return signer, original, rewritten, leaves, own


def test_a_checkpoint_you_hold_that_the_log_no_longer_matches_blames_the_events_since_the_last_you_hold(tmp_path: Path) -> None:
    """Whoever holds the signing key can rewrite an event, its leaf and every checkpoint after it: an
    auditor's held checkpoint caught it, but the log's own re-signed checkpoints narrowed the blame to
    events after them (position 88 was named; 73 was altered)."""
    signer, original, rewritten, leaves, own = rewritten_at(tmp_path, 2)
    assert verify(rewritten, leaves, own, [signer.verifier]).ok  # the log's word, signed anew
    report = verify(rewritten, leaves, own, [signer.verifier], held=[signed(signer, original, 6)])
    assert report.problem is not None and report.problem[:2] == ("altered", None), report
    assert "(positions 1 to 6)" in report.problem.detail, report


def test_a_checkpoint_you_hold_that_is_also_the_logs_own_narrows_the_blame(tmp_path: Path) -> None:
    """The one held at size 4 is the log's own too (counted once): an alteration after it is blamed on positions 5 to 6, not 1 to 6."""
    signer, original, rewritten, leaves, own = rewritten_at(tmp_path, 5)
    report = verify(rewritten, leaves, own, [signer.verifier], held=[signed(signer, original, 4), signed(signer, original, 6)])
    assert report.problem is not None and report.problem[:2] == ("altered", 5) and "(positions 5 to 6)" in report.problem.detail, report

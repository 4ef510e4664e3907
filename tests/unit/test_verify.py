"""`audit.verify.verify` on a log built here: what a signed checkpoint proves, and what it does not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

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

"""Tampering with the stored log, straight in the database (sqlite3, psycopg), is found and named.

Each test chains and checkpoints a small log, changes the stored events (or checkpoints) the
way someone with access to the database file could, and asks `verify` what it sees.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import msgspec
import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from audit.signing import Signer, body, parse_body
from audit.ledger import receipt_of, records, unbound
from audit.replay import view_at
from audit.bundle import export, verify_bundle
from audit.history import Filter
from audit.verify import Report, verify_store
from domain.consultations.consultation import Consultation
from domain.consultations.response import Response
from domain.errors import UnreadableEvent
from domain.signups.signup import Signup
from runtime import System
from tests.conftest import ON_SQLITE_ONLY, PASSWORD, POSTGRES, SLUG, enrol_everyone, submit
from tests.integration.test_signups import SESSIONS, future
from workers.checkpointer import Checkpointer


@pytest.fixture
def chained(system: System) -> Checkpointer:
    """Twenty responses chained under a checkpoint, then five more chained under a second one."""
    checkpointer = system.checkpointer()
    submit(system, 20)
    checkpointer.step()
    submit(system, 5)
    checkpointer.step()
    checkpointer.checkpoint(datetime.now(UTC))
    return checkpointer


def verify(system: System, checkpointer: Checkpointer) -> Report:
    return verify_store(system.app, system.ledger, [checkpointer.signer.verifier], keys=system.keys_held)


def ledger_table(store_env: dict[str, str], name: str) -> str:
    """One of the ledger's tables (`nodes`, `receipts`, …), as raw SQL names it."""
    return f"ledger_{name}" if store_env["PERSISTENCE_MODULE"] == "store.sqlite" else f"{store_env['POSTGRES_SCHEMA']}.ledger_{name}"


@contextmanager
def database(system: System, store_env: dict[str, str]) -> Iterator[tuple[Any, str, str, str]]:
    """A raw connection, the events table, its position column and the ledger's checkpoints table."""
    if store_env["PERSISTENCE_MODULE"] == "store.sqlite":
        conn = sqlite3.connect(store_env["SQLITE_DBNAME"])
        try:
            yield conn, "stored_events", "rowid", "ledger_checkpoints"
            conn.commit()
        finally:
            conn.close()
        return
    schema = store_env["POSTGRES_SCHEMA"]
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        yield conn, f"{schema}.{system.app.recorder.events_table_name}", "notification_id", f"{schema}.ledger_checkpoints"


def sql(conn: Any, statement: str, *params: Any) -> list[Any]:
    statement = statement.replace("?", "%s") if isinstance(conn, psycopg.Connection) else statement
    cursor = conn.execute(statement, params)
    return cursor.fetchall() if cursor.description else []


def test_an_untouched_log_verifies(system: System, chained: Checkpointer) -> None:
    report = verify(system, chained)
    assert report.ok, report
    assert (report.events, report.leaves, report.checkpoints, report.shredded, report.sealed) == (27, 27, 2, 0, 25)
    assert str(report).startswith("ok: 27 events") and "the 25 keys its sealed values name all held or recorded destroyed" in str(report)


def test_altered_bytes_are_named_with_their_position(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    receipt = receipt_at(system, 10)
    with database(system, store_env) as (conn, events, pos, _):
        (state,) = sql(conn, f"SELECT state FROM {events} WHERE {pos} = 10")[0]
        sql(conn, f"UPDATE {events} SET state = ? WHERE {pos} = 10", bytes(state).replace(b'"read"', b'"know_well"'))
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("altered", 10), report
    # Its respondent, asking for a proof, is told the same (a tester was told the event did not hold the receipt).
    (_, position, leaf), found = system.ledger.leaf_of(receipt), records(system.app.recorder, 9, 1)  # type: ignore[misc]
    assert unbound(found[0], position, receipt, leaf) == (
        "the event at position 10 no longer hashes to its leaf: the event, or the ledger's leaf, was altered since it was chained"
    )
    # Its receipt's hash altered too (a tester's): still the event, not the index, that is named.
    with database(system, store_env) as (conn, events, pos, _):
        (state,) = sql(conn, f"SELECT state FROM {events} WHERE {pos} = 10")[0]
        assert receipt.encode() in bytes(state)
        sql(conn, f"UPDATE {events} SET state = ? WHERE {pos} = 10", bytes(state).replace(receipt.encode(), b"0" * 64))
    found = records(system.app.recorder, 9, 1)
    assert "no longer hashes to its leaf" in unbound(found[0], position, receipt, leaf)  # type: ignore[operator]


def test_a_deleted_event_is_missing(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"DELETE FROM {events} WHERE {pos} = 7")
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("missing", 7), report


def test_two_swapped_events_are_reordered(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"UPDATE {events} SET {pos} = 1000000 WHERE {pos} = 12")
        sql(conn, f"UPDATE {events} SET {pos} = 12 WHERE {pos} = 15")
        sql(conn, f"UPDATE {events} SET {pos} = 15 WHERE {pos} = 1000000")
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("reordered", 12), report
    assert "chained at position 15" in report.problem.detail


def test_the_tail_deleted_after_a_checkpoint_is_truncation(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"DELETE FROM {events} WHERE {pos} > 24")
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("truncated", 25), report
    assert "checkpoint #2 covers up to position 27" in report.problem.detail


def test_a_forged_checkpoint_is_named(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    with database(system, store_env) as (conn, _, _, checkpoints):
        sql(conn, f"UPDATE {checkpoints} SET root = ? WHERE seq = 2", b"\x00" * 32)
    report = verify(system, chained)
    assert report.problem is not None and report.problem.kind == "forged" and "#2" in report.problem.detail, report
    # The root changed in the signed text too: the signature no longer holds.
    with database(system, store_env) as (conn, _, _, checkpoints):
        (note,) = sql(conn, f"SELECT note FROM {checkpoints} WHERE seq = 1")[0]
        lines = note.split("\n")
        lines[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        sql(conn, f"UPDATE {checkpoints} SET note = ? WHERE seq = 1", "\n".join(lines))
    report = verify(system, chained)
    assert report.problem is not None and report.problem.kind == "forged" and "#1: its signature" in report.problem.detail, report


def test_a_checkpoint_deleted_or_its_stored_time_changed_is_found(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    """An auditor changed a stored time (the API served it, unsigned) and deleted a checkpoint: both verified ok."""
    with database(system, store_env) as (conn, _, _, checkpoints):
        (time,) = sql(conn, f"SELECT time FROM {checkpoints} WHERE seq = 2")[0]
        sql(conn, f"UPDATE {checkpoints} SET time = ? WHERE seq = 2", "2026-11-01T00:00:00+00:00")
    report = verify(system, chained)
    assert report.problem is not None and report.problem.kind == "forged" and "#2: the stored size, root, position or time" in report.problem.detail
    with database(system, store_env) as (conn, _, _, checkpoints):
        sql(conn, f"UPDATE {checkpoints} SET time = ? WHERE seq = 2", time)
        sql(conn, f"DELETE FROM {checkpoints} WHERE seq = 1")
    report = verify(system, chained)
    assert report.problem == ("missing", None, "checkpoint #1 is gone (the checkpoints go on at #2)"), report


def test_a_ledger_cut_short_is_truncation_not_a_crash(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    leaves = "ledger_leaves" if store_env["PERSISTENCE_MODULE"] == "store.sqlite" else f"{store_env['POSTGRES_SCHEMA']}.ledger_leaves"
    with database(system, store_env) as (conn, _, _, _):
        sql(conn, f"DELETE FROM {leaves} WHERE leaf >= 22")
    report = verify(system, chained)
    assert report.problem is not None and report.problem.kind == "missing" and "#2 covers 27 events" in report.problem.detail, report


def test_a_tree_node_altered_or_deleted_in_the_ledger_is_found(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    """Proofs are built from the stored subtrees: an auditor zeroed one, respondents got proofs that fail, and verify said ok."""
    nodes = ledger_table(store_env, "nodes")
    with database(system, store_env) as (conn, _, _, _):
        (stored,) = sql(conn, f"SELECT hash FROM {nodes} WHERE level = 1 AND idx = 5")[0]
        sql(conn, f"UPDATE {nodes} SET hash = ? WHERE level = 1 AND idx = 5", b"\x00" * 32)
    report = verify(system, chained)
    assert report.problem == ("altered", None, "the ledger's tree node at level 1, index 5 (leaves 10 to 11) is not the hash of its two halves: proofs that use it fail"), report
    with database(system, store_env) as (conn, _, _, _):
        sql(conn, f"UPDATE {nodes} SET hash = ? WHERE level = 1 AND idx = 5", stored)
        (deleted,) = sql(conn, f"SELECT hash FROM {nodes} WHERE level = 2 AND idx = 3")[0]
        sql(conn, f"DELETE FROM {nodes} WHERE level = 2 AND idx = 3")
    report = verify(system, chained)
    assert report.problem is not None and report.problem.kind == "missing" and "level 2, index 3" in report.problem.detail, report
    # One on the path of the proof that checkpoint #2 is consistent with #1: named, not blamed on the checkpoint.
    with database(system, store_env) as (conn, _, _, _):
        sql(conn, f"INSERT INTO {nodes} (level, idx, hash) VALUES (?, ?, ?)", 2, 3, deleted)
        sql(conn, f"UPDATE {nodes} SET hash = ? WHERE level = 1 AND idx = 10", b"\x00" * 32)
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("altered", None) and "level 1, index 10" in report.problem.detail, report
    with database(system, store_env) as (conn, _, _, _):
        sql(conn, f"DELETE FROM {nodes} WHERE level = 1 AND idx = 10")
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("missing", None) and "level 1, index 10" in report.problem.detail, report


def test_a_signature_by_another_key_is_forged(system: System, store_env: dict[str, str], chained: Checkpointer, tmp_path: Any) -> None:
    other = Signer(tmp_path, chained.signer.verifier.name)
    latest = system.ledger.latest()
    assert latest is not None
    text = latest.note.rpartition("\n\n")[0] + "\n"
    forged = other.sign(body(parse_body(text)))
    with database(system, store_env) as (conn, _, _, checkpoints):
        sql(conn, f"UPDATE {checkpoints} SET note = ? WHERE seq = 2", forged)
    report = verify(system, chained)
    assert report.problem is not None and report.problem.kind == "forged", report


def test_a_position_that_appears_below_a_chained_one_is_reordering(
    system: System, store_env: dict[str, str], chained: Checkpointer, caplog: pytest.LogCaptureFixture
) -> None:
    with database(system, store_env) as (conn, events, pos, _):
        cols = "originator_id, originator_version, topic, state"
        row = sql(conn, f"SELECT {cols} FROM {events} WHERE {pos} = 27")[0]
        sql(conn, f"INSERT INTO {events} ({pos}, {cols}) VALUES (?, ?, ?, ?, ?)", 40, row[0], 90, row[2], row[3])
    chained.step()  # chains 40, and watches 28 to 39
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"INSERT INTO {events} ({pos}, {cols}) VALUES (?, ?, ?, ?, ?)", 33, row[0], 91, row[2], row[3])
    assert chained.step() == 0  # 33 is never chained...
    assert "position 33 appeared after later positions were chained" in caplog.text  # ...and reported
    assert system.ledger.head() == (28, 40)
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("reordered", 33), report


@pytest.mark.parametrize("position", [0, -1])
def test_an_event_put_below_the_first_position_is_found_live_and_in_a_bundle(
    system: System, store_env: dict[str, str], chained: Checkpointer, position: int, tmp_path: Any
) -> None:
    """The log never puts an event at 0 or below, so the checkpointer never chains one there; but its
    aggregate reads it (a consultation closed where no audit tool looked)."""
    consultation = system.consultations.get(SLUG)
    with database(system, store_env) as (conn, events, pos, _):
        cols = "originator_id, originator_version, topic, state"
        sql(conn, f"INSERT INTO {events} ({pos}, {cols}) VALUES (?, ?, ?, ?, ?)", position,
            consultation.id.hex if store_env["PERSISTENCE_MODULE"] == "store.sqlite" else consultation.id,
            consultation.version + 1, get_topic(Consultation.Closed), b'{"timestamp":"2026-12-01T06:40:00.000000Z"}')
    assert not system.consultations.get(SLUG).is_open  # what the application now does
    listed = system.history.page(0, 100, Filter())  # what an auditor reads from /audit/events
    assert listed.events[0].position == position and listed.events[0].type == "consultation.closed"
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("reordered", position), report
    assert "below its first position" in report.problem.detail
    export(system, tmp_path / "bundle")
    bundled = verify_bundle(tmp_path / "bundle", [chained.signer.verifier])
    assert bundled.problem is not None and bundled.problem[:2] == ("reordered", position), bundled


def test_shredded_keys_verify_ok_and_are_counted(system: System, store_env: dict[str, str], seed: Any, chained: Checkpointer) -> None:
    staff = enrol_everyone(system)
    system.consultations.load(future(seed))
    signup = system.signups.request(SESSIONS, "session_1300", "Sam Person", "sam@example.org", True)
    system.signups.erase(signup, token=None)
    (response,) = submit(system, 1)
    system.review.claim(response, staff["reviewer"], timedelta(minutes=5))
    system.review.redact(response, staff["reviewer"], "works_well", 0, 6, "a name")
    system.review.shred_originals(response, staff["admin"], "works_well")
    leaver = staff["reviewer2"]
    system.staff.deactivate(leaver, by=staff["admin"])
    system.staff.erase(leaver, by=staff["admin"])  # their name and email's key, and their password hash's
    system.staff.change_password(staff["editor"], PASSWORD, "a new passphrase of theirs")  # the old hash's key
    while chained.step():
        pass
    chained.checkpoint(datetime.now(UTC))
    report = verify(system, chained)
    assert report.ok, report
    assert report.shredded == 5 and "5 keys shredded" in str(report)
    assert system.texts.get(system.review.shredded_keys()[0]) is None  # really gone, and the log still proves
    # A shredding event's bytes emptied by hand: altered, not a decoding error in the walk that gathers its keys.
    (erased,) = [n.id for n in system.app.recorder.select_notifications(start=1, limit=1000, topics=[get_topic(Signup.Erased)])]
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"UPDATE {events} SET state = NULL WHERE {pos} = ?", erased)
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("altered", erased), report


def test_an_event_the_code_cannot_read_is_chained_all_the_same_and_stalls_nothing(system: System, chained: Checkpointer) -> None:
    """A tester's response without a receipt hash stopped the checkpointer for good (no leaf, no checkpoint,
    every later receipt unfound) and sent the clusterer into a rebuild a second."""
    position = system.app.recorder.insert_events([StoredEvent(uuid4(), 1, get_topic(Response.Submitted), b'{"bogus": 1}')])[-1]
    (after,) = submit(system, 1)
    clusterer = system.clusterer()
    clusterer.catch_up()  # reads past it, once
    assert clusterer.position == system.app.head()
    chained.step()
    assert system.ledger.head()[1] == system.app.head() > position  # chained, and what came after it
    receipt = system.consultations.response(after).receipt_hash
    assert system.ledger.leaf_of(receipt) is not None  # the next respondent's receipt finds its leaf
    chained.checkpoint(datetime.now(UTC))
    assert verify(system, chained).ok
    # What folds the whole log says where it stops and why, rather than failing with a decoder's traceback (a tester's 500s).
    with pytest.raises(UnreadableEvent, match=f"The event at position {position} of the log cannot be read"):
        view_at(system.app, "stats", None)


def receipt_at(system: System, position: int) -> str:
    (record,) = records(system.app.recorder, position - 1, 1)
    receipt = receipt_of(record[4])
    assert record[0] == position and receipt is not None
    return receipt


def leaf_at(system: System, position: int) -> int:
    return next(leaf for leaf, p, _ in system.ledger.leaves() if p == position)


def test_a_receipt_sent_to_another_events_leaf_is_found_by_verify_and_refused_to_its_respondent(
    system: System, store_env: dict[str, str], chained: Checkpointer,
) -> None:
    """A tester removed a response and pointed its receipt at another's leaf: its respondent got a valid proof."""
    moved = receipt_at(system, 10)
    with database(system, store_env) as (conn, _, _, _):
        receipts = ledger_table(store_env, "receipts")
        sql(conn, f"UPDATE {receipts} SET leaf = ? WHERE receipt_hash = ?", leaf_at(system, 12), moved)
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("missing", 10) and "receipt index" in report.problem.detail, report
    index, position, leaf = system.ledger.leaf_of(moved)  # type: ignore[misc]
    found = records(system.app.recorder, position - 1, 1)
    assert position == 12 and "which does not hold it" in unbound(found[0], 12, moved, leaf)  # as the inclusion route checks  # type: ignore[operator]
    assert unbound(found[0], 12, receipt_at(system, 12), leaf) is None


def test_a_receipt_index_entry_no_event_holds_is_forged(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    with database(system, store_env) as (conn, _, _, _):
        receipts = ledger_table(store_env, "receipts")
        sql(conn, f"INSERT INTO {receipts} (receipt_hash, leaf) VALUES (?, ?)", "ab" * 32, leaf_at(system, 2))  # a consultation's event
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("forged", 2) and "abababab" in report.problem.detail, report
    with database(system, store_env) as (conn, _, _, _):
        receipts = ledger_table(store_env, "receipts")
        sql(conn, f"UPDATE {receipts} SET leaf = ? WHERE receipt_hash = ?", 10_000, "ab" * 32)  # past the last leaf
    report = verify(system, chained)
    assert report.problem is not None and report.problem.kind == "forged" and "past the last leaf" in report.problem.detail, report


@ON_SQLITE_ONLY  # PostgreSQL's columns are typed: such values cannot be stored there
def test_a_stored_value_of_another_type_is_read_as_its_bytes_not_a_crash(system: System, store_env: dict[str, str], chained: Checkpointer, tmp_path: Any) -> None:
    """A tester's edits in sqlite3 made verify end in a TypeError or a bare fromhex() error."""
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"UPDATE {events} SET state = CAST(state AS TEXT) WHERE {pos} = 10")
    assert verify(system, chained).ok  # the same bytes, stored as text
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"UPDATE {events} SET originator_id = 'not a uuid' WHERE {pos} = 12")
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("altered", 12), report
    # An auditor's: what folds the log (the report, /audit/events, a view as it stood) failed on its whole batch with a 500,
    # and the export with a bare error, leaving half a bundle.
    with pytest.raises(UnreadableEvent, match="The event at position 12 of the log cannot be read"):
        view_at(system.app, "stats", None)
    listed = system.history.page(0, 100, Filter())
    assert [e.type for e in listed.events if e.position == 12] == ["unreadable"]
    with pytest.raises(ValueError, match="The event at position 12 has an aggregate id that is no UUID"):
        export(system, tmp_path / "bundle")
    assert not list((tmp_path / "bundle").iterdir())
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"UPDATE {events} SET state = CAST(state AS TEXT) || ' ' WHERE {pos} = 11")
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("altered", 11), report


def test_a_topic_or_state_set_to_null_is_altered_not_a_crash(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    """An auditor's: the library's schema lets both be NULL, and verify (and so `agora status`) ended in a TypeError."""
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"UPDATE {events} SET topic = NULL, state = NULL WHERE {pos} = 10")
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("altered", 10), report


def test_a_responses_history_shows_an_event_this_code_cannot_read_as_unreadable(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    """An auditor's: a response's history (`/review/responses/{id}/history`) was a 500 when one of its events did not decode."""
    (response,) = [n.originator_id for n in system.app.recorder.select_notifications(start=10, limit=1)]
    with database(system, store_env) as (conn, events, pos, _):
        sql(conn, f"UPDATE {events} SET state = ? WHERE {pos} = 10", b"\xff\xfe\x00\xde\xad")
    (event,) = system.history.of_aggregates([response])
    assert (event.position, event.type) == (10, "unreadable")


def test_a_receipt_index_entry_is_compared_whole(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    """A tester's entry held its hash and the JSON after it (`…","fingerprint`): a substring check took it."""
    with database(system, store_env) as (conn, _, _, _):
        receipts = ledger_table(store_env, "receipts")
        sql(conn, f"UPDATE {receipts} SET receipt_hash = receipt_hash || ? WHERE leaf = ?", '","fingerprint', leaf_at(system, 9))
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("forged", 9), report


def test_a_tree_node_added_past_the_tree_is_found(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    """A tester's extra node verified ok; one where the tree grows next would stop the checkpointer."""
    with database(system, store_env) as (conn, _, _, _):
        nodes = ledger_table(store_env, "nodes")
        sql(conn, f"INSERT INTO {nodes} (level, idx, hash) VALUES (?, ?, ?)", 1, 13, b"\x00" * 32)  # 27 leaves: level 1 ends at index 12
    report = verify(system, chained)
    assert report.problem is not None and report.problem.kind == "forged" and "14 nodes at level 1, up to index 13" in report.problem.detail, report


def test_a_checkpointer_appending_while_verify_reads_is_no_tampering(
    system: System, chained: Checkpointer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reviewer's: the receipt index and the node counts, read after an append the walk did not see, read as forged."""
    ledger = system.ledger
    receipts, counts = ledger.receipts, ledger.node_counts

    def append() -> None:
        submit(system, 1)
        chained.step()

    def receipts_then_append(after: tuple[int, str] = (-1, ""), limit: int = 10_000) -> list[Any]:
        rows = receipts(after, limit)
        if not rows:
            append()  # after the index's last (empty) read: the walk goes on to the new leaf, its entry unread
        return rows

    def append_then_count() -> list[Any]:
        append()  # after the walk's last read of the leaves
        return counts()

    monkeypatch.setattr(ledger, "receipts", receipts_then_append)
    monkeypatch.setattr(ledger, "node_counts", append_then_count)
    assert verify(system, chained).ok


def sealed_key(system: System, store_env: dict[str, str], position: int) -> str:
    with database(system, store_env) as (conn, events, pos, _):
        (state,) = sql(conn, f"SELECT state FROM {events} WHERE {pos} = ?", position)[0]
    return msgspec.json.decode(bytes(state))["texts"]["works_well"]["key_id"]


def test_a_key_deleted_outside_the_rules_is_named_with_the_position_it_sealed(system: System, store_env: dict[str, str], chained: Checkpointer) -> None:
    """An auditor's: a response's text made unreadable by deleting its key in the database, no shredding recorded, verified ok."""
    key = sealed_key(system, store_env, 10)
    with database(system, store_env) as (conn, *_):
        table = "data_keys" if store_env["PERSISTENCE_MODULE"] == "store.sqlite" else f"{store_env['POSTGRES_SCHEMA']}.data_keys"
        sql(conn, f"DELETE FROM {table} WHERE key_id = ?", key)
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("destroyed", 10), report
    assert key in report.problem.detail and "no event records destroying it" in report.problem.detail


def test_a_key_shredded_by_the_rules_while_verify_walks_is_no_tampering(system: System, seed: Any, chained: Checkpointer) -> None:
    """The shredding is recorded past the walk's end, and its key deleted before verify reads the keys held."""
    staff = enrol_everyone(system)
    (response,) = submit(system, 1)
    system.review.claim(response, staff["reviewer"], timedelta(minutes=5))
    system.review.redact(response, staff["reviewer"], "works_well", 0, 6, "a name")
    while chained.step():
        pass
    chained.checkpoint(datetime.now(UTC))

    def shred_then_held() -> set[str]:
        system.review.shred_originals(response, staff["admin"], "works_well")
        return system.keys_held()

    report = verify_store(system.app, system.ledger, [chained.signer.verifier], keys=shred_then_held)
    assert report.ok, report
    assert system.review.shredded_keys()  # and it was shredded while verify ran


def test_a_shredded_key_back_in_the_key_store_is_named(system: System, store_env: dict[str, str], seed: Any, chained: Checkpointer) -> None:
    """A tester's: a key table restored from a backup older than a shredding made the text readable again, and
    verify said ok, counting the key as shredded."""
    staff = enrol_everyone(system)
    (response,) = submit(system, 1)
    system.review.claim(response, staff["reviewer"], timedelta(minutes=5))
    system.review.redact(response, staff["reviewer"], "works_well", 0, 6, "a name")
    original = system.consultations.response(response).texts["works_well"].key_id
    backup = system.texts.get(original)
    shredded_at = system.review.shred_originals(response, staff["admin"], "works_well")
    while chained.step():
        pass
    chained.checkpoint(datetime.now(UTC))
    assert verify(system, chained).ok
    with system.texts.datastore.transaction(commit=True) as c:  # the key table restored from the backup
        c.execute(f"INSERT INTO {system.texts.table} (key_id, key) VALUES ({system.texts.p}, {system.texts.p})", (original, backup))
    report = verify(system, chained)
    assert report.problem is not None and report.problem[:2] == ("unshredded", shredded_at), report
    assert original in report.problem.detail and "agora keys reshred" in report.problem.detail

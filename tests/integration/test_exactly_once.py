"""A keyed submission is recorded once, decided by the event store: across retries, batches and processes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from domain.consultations.consultation import Consultation
from domain.consultations.response import Response
from domain.consultations.service import Keyed, Receipt, Submission, hash_receipt
from domain.errors import IdempotencyKeyReused, NotAcceptingResponses
from runtime import System
from runtime.settings import Settings
from tests.conftest import SLUG

ANSWERS = {"familiarity": "read", "works_well": "The section on AI use."}


def recorded(system: System) -> Counter:
    return Counter(e.originator_id for e in system.app.select_events(Response.Submitted))


def test_a_key_repeated_in_one_batch_and_in_the_next_is_recorded_once(system: System) -> None:
    keyed = Submission(SLUG, ANSWERS, key="k" * 20)
    other = Submission(SLUG, {"familiarity": "not_aware"}, key="k" * 20)
    first, again, reused, unkeyed = system.consultations.submit_batch([keyed, keyed, other, Submission(SLUG, ANSWERS)])
    assert isinstance(first, Receipt) and isinstance(unkeyed, Receipt)
    assert again == first
    assert isinstance(reused, IdempotencyKeyReused)
    (later,) = system.consultations.submit_batch([keyed])
    assert isinstance(later, Receipt) and (later.id, later.receipt) == (first.id, first.receipt)
    assert recorded(system) == Counter({first.id: 1, unkeyed.id: 1})


def test_a_retry_after_the_consultation_closed_still_gets_its_receipt(system: System) -> None:
    (receipt,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS, key="c" * 20)])
    system.consultations.close(SLUG)
    (retry,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS, key="c" * 20)])
    assert retry == Receipt(receipt.id, receipt.receipt, system.app.head())
    (fresh,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS, key="d" * 20)])
    assert isinstance(fresh, NotAcceptingResponses)


def test_ids_and_receipts_follow_from_the_key_under_the_secret(system: System, store_env: dict[str, str], settings: Settings) -> None:
    """Knowing someone's Idempotency-Key is not enough to know their response's id or receipt."""
    (a,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS, key="a" * 20)])
    (b,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS, key="b" * 20)])
    assert a.id != b.id and a.receipt != b.receipt
    with System(msgspec.structs.replace(settings, secret="s" * 48), store_env) as other:
        (c,) = other.consultations.submit_batch([Submission(SLUG, ANSWERS, key="a" * 20)])
    assert c.id != a.id and c.receipt != a.receipt


def test_concurrent_processes_retrying_the_same_keys_record_each_once(system: System, store_env: dict[str, str], settings: Settings) -> None:
    """Two application instances (as two API processes would be) race the same keyed submissions."""
    keys = [f"race-{i:04d}-................" for i in range(40)]
    answers: dict[int, list[Receipt]] = {0: [], 1: []}
    systems = [System(settings, store_env), System(settings, store_env)]
    start = threading.Barrier(2)

    def run(n: int) -> None:
        start.wait()
        for i in range(0, len(keys), 4):  # batches of four, overlapping the other process's
            results = systems[n].consultations.submit_batch([Submission(SLUG, ANSWERS, key=k) for k in keys[i : i + 4]])
            answers[n].extend(results)  # type: ignore[arg-type]

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in systems:
        s.close()
    assert all(isinstance(r, Receipt) for r in answers[0] + answers[1])
    assert [(r.id, r.receipt) for r in answers[0]] == [(r.id, r.receipt) for r in answers[1]]
    counts = recorded(system)
    assert len(counts) == len(keys) and set(counts.values()) == {1}


def test_no_response_is_recorded_after_a_close_that_committed_first(system: System, store_env: dict[str, str], settings: Settings) -> None:
    """Closes race batches of submissions from another application instance (as another process would)."""
    for round_ in range(5):
        writer = System(settings, store_env)
        closed = threading.Event()

        def submit_until_refused() -> None:
            while True:
                results = writer.consultations.submit_batch([Submission(SLUG, ANSWERS) for _ in range(5)])
                if any(isinstance(r, NotAcceptingResponses) for r in results) or closed.is_set() and not results:
                    return

        thread = threading.Thread(target=submit_until_refused)
        thread.start()
        time.sleep(0.02)
        system.consultations.close(SLUG)
        closed.set()
        thread.join()
        writer.close()
        order = [type(e).__name__ for e in system.app.select_events(Consultation.Closed, Response.Submitted)]
        closing = len(order) - 1 - order[::-1].index("Closed")
        assert "Submitted" not in order[closing:], f"round {round_}: a response was recorded after the close"
        system.consultations.open(SLUG)


def test_a_commit_whose_answer_was_lost_and_that_the_store_tried_again_records_each_response_once(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tester dropped PostgreSQL connections at COMMIT: the store's retry was refused (recorded already), the
    batch was checked again, and its unkeyed responses were recorded a second time, under new ids."""
    insert = system.app.recorder.insert_events
    lost = []

    def committed_then_tried_again(*args: Any, **kwargs: Any) -> Any:
        if not lost:
            lost.append(insert(*args, **kwargs))  # committed; the answer is lost, and the store tries again
        return insert(*args, **kwargs)

    monkeypatch.setattr(system.app.recorder, "insert_events", committed_then_tried_again)
    receipts = system.consultations.submit_batch([Submission(SLUG, ANSWERS), Submission(SLUG, ANSWERS, key="k" * 20), Submission(SLUG, ANSWERS)])
    assert lost and all(isinstance(r, Receipt) for r in receipts)
    recorded = {e.originator_id: e.receipt_hash for e in system.app.select_events(Response.Submitted)}
    assert recorded == {r.id: hash_receipt(r.receipt) for r in receipts}  # type: ignore[union-attr]


@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)
def test_events_sent_again_after_their_commit_was_answered_by_a_dropped_connection_are_found_not_refused(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store tries an insert again when its connection drops, which may be after the server committed it:
    then a review note, say, was refused as a conflict, or recorded twice by the command run again."""
    recorder = system.app.recorder
    response = Response(system.consultations.get(SLUG).id, 1, {"familiarity": "read"}, {}, "h")
    stored = [system.app.mapper.to_stored_event(e) for e in response.collect_events()]
    insert, committed = recorder._insert, []

    def committed_then_dropped(*args: Any) -> Any:
        if committed:  # the store's next attempt, refused: the first one is recorded
            return insert(*args)
        committed.append(insert(*args))
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(recorder, "_insert", committed_then_dropped)
    positions = recorder.insert_events(stored)
    assert positions == committed[0] and system.app.head() == positions[-1]  # type: ignore[index]
    monkeypatch.undo()
    with pytest.raises(IntegrityError):  # sent again with no connection lost: refused, as the library's recorders do
        recorder.insert_events(stored)


def test_a_batch_checks_against_the_consultation_as_last_read_and_the_store_has_the_last_word(
    system: System, store_env: dict[str, str], settings: Settings
) -> None:
    """Another process (an operator's close, then open) changes the consultation that this one read last."""
    other = System(settings, store_env)
    try:
        (first,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS, key="k" * 20)])
        assert isinstance(first, Receipt)  # read it open
        other.consultations.close(SLUG)
        closed, retried = system.consultations.submit_batch([Submission(SLUG, ANSWERS), Submission(SLUG, ANSWERS, key="k" * 20)])
        assert isinstance(closed, NotAcceptingResponses)  # the insert refused what was checked against it open
        # A retry of a response recorded before the close still answers with its receipt.
        assert isinstance(retried, Receipt) and (retried.id, retried.receipt) == (first.id, first.receipt)
        other.consultations.open(SLUG)
        (opened,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS)])
        assert isinstance(opened, Receipt)  # not refused by the closed consultation it read last
    finally:
        other.close()
    assert len(recorded(system)) == 2


def test_a_change_to_the_consultation_since_it_was_checked_refuses_the_insert(system: System) -> None:
    """The store's own check: a save that expects an earlier version of the consultation records nothing."""
    consultation = system.consultations.get(SLUG)
    stale = consultation.version
    system.consultations.close(SLUG)
    system.consultations.open(SLUG)
    response = Response(consultation.id, 1, {"familiarity": "read"}, {}, "h")
    head = system.app.head()
    with pytest.raises(IntegrityError):
        system.app.save(response, expect={consultation.id: stale})
    assert system.app.head() == head
    system.app.save(Response(consultation.id, 1, {"familiarity": "read"}, {}, "h"), expect={consultation.id: stale + 2})
    assert system.app.head() > head


def test_the_data_keys_of_sealed_text_are_recorded_with_their_events_or_not_at_all(system: System) -> None:
    """One transaction for a batch's events and the keys of their text: a refused insert leaves no key behind."""
    consultation = system.consultations.get(SLUG)
    stale = consultation.version
    system.consultations.close(SLUG)
    system.consultations.open(SLUG)
    sealed, keys = system.texts.seal_for_save([("works_well", "refused"), ("works_well", "also refused")])
    response = Response(consultation.id, 1, {}, {"works_well": sealed[0]}, "h")
    with pytest.raises(IntegrityError):  # refused by the recorder's check
        system.app.save(response, expect={consultation.id: stale}, keys=keys)
    assert [system.texts.get(s.key_id) for s in sealed] == [None, None]
    (first,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS, key="k" * 20)])
    sealed, keys = system.texts.seal_for_save([("works_well", "refused")])
    with pytest.raises(IntegrityError):  # refused by the database: the id is recorded already
        system.app.save(Response(consultation.id, 1, {}, {"works_well": sealed[0]}, "h", id=first.id), keys=keys)
    assert system.texts.get(sealed[0].key_id) is None
    (receipt,) = system.consultations.submit_batch([Submission(SLUG, ANSWERS)])
    (text,) = system.consultations.response(receipt.id).texts.values()
    assert system.texts.unseal(text, "works_well") == ANSWERS["works_well"]


def test_a_retry_of_a_response_recorded_before_the_fingerprint_changed_is_still_a_retry(system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """Responses recorded before 2026-12-01 keep a fingerprint under the secret alone: a retry across the upgrade is no key reuse."""
    answers, key = {"familiarity": "read", "works_well": "Call me."}, "k" * 20
    with monkeypatch.context() as before:
        before.setattr(Keyed, "fingerprint", lambda self, _, answers: Keyed.fingerprint_before(self, answers))
        (first,) = system.consultations.submit_batch([Submission(SLUG, answers, key=key)])
    assert isinstance(first, Receipt)
    head = system.app.head()
    (again,) = system.consultations.submit_batch([Submission(SLUG, answers, key=key)])
    assert isinstance(again, Receipt) and (again.id, again.receipt) == (first.id, first.receipt)
    (other,) = system.consultations.submit_batch([Submission(SLUG, {**answers, "works_well": "Other."}, key=key)])
    assert isinstance(other, IdempotencyKeyReused) and system.app.head() == head


def test_a_response_is_recorded_at_the_time_the_closing_time_was_checked_against(system: System) -> None:
    """An operator's: with `closes` a few seconds ahead under load, the last response recorded its event 71 µs past the
    closing time: the rules were checked at one moment and the event stamped at a later one."""
    closes = datetime.now(UTC) + timedelta(hours=1)
    system.consultations.move_closing_time(SLUG, closes)
    checked_at = closes - timedelta(microseconds=1)
    (receipt,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read"})], now=checked_at)
    assert isinstance(receipt, Receipt)
    assert system.consultations.response(receipt.id).created_on == checked_at < closes
    (late,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read"})], now=closes)
    assert isinstance(late, NotAcceptingResponses)

"""The store's recorders read the log as the library's do: they pass the library's own tests of reading it.
And SQLite's writers, in every process, take turns through the kernel.

store.sqlite and store.postgres read notifications with a query of their own (rows as tuples, made
into notifications cheaply, for a rebuild's sake); the library's test of inserting and selecting,
run against each, checks every way of asking (start, stop, topics, limit, inclusive or not).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import unittest
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import Notification
from eventsourcing.tests.persistence import ApplicationRecorderTestCase

import store
from domain.core import Agora
from store.codec import notification


def run_library_test(recorder: Any, name: str) -> unittest.TestResult:
    class Case(ApplicationRecorderTestCase[Any]):
        def create_recorder(self) -> Any:
            return recorder

    result = unittest.TestResult()
    before = set(threading.enumerate())
    Case(name).run(result)
    for thread in set(threading.enumerate()) - before:  # its readers stop on their own: let them, before the store closes
        thread.join(timeout=30)
    return result


@pytest.mark.parametrize("test", ["test_insert_select", "test_concurrent_no_conflicts"])
def test_the_recorders_pass_the_librarys_tests_of_reading_the_log(store_env: dict[str, str], tmp_path: Any, test: str) -> None:
    app = Agora(env={**store.environment(tmp_path, store_env), **store.CODEC})
    try:
        result = run_library_test(app.recorder, test)
    finally:
        app.close()
    assert result.testsRun == 1
    assert result.wasSuccessful(), [text for _, text in result.errors + result.failures]


def test_a_notification_made_cheaply_is_the_librarys_own() -> None:
    args = {"id": 7, "originator_id": "an id", "originator_version": 2, "topic": "a:B", "state": b"{}"}
    made, theirs = notification(**args), Notification(**args)
    assert made == theirs and repr(made) == repr(theirs) and hash(made) == hash(theirs)
    with pytest.raises(AttributeError):  # frozen, as theirs
        made.id = 8  # type: ignore[misc]


def test_sqlite_writers_of_every_process_take_turns_through_an_flock_of_the_file(tmp_path: Path) -> None:
    """Not SQLite's polling with growing sleeps (store.sqlite.Datastore): a write transaction holds `<file>.writers`."""
    db = tmp_path / "agora.sqlite"
    app = Agora(env={**store.environment(tmp_path, {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(db)}), **store.CODEC})
    probe = (
        f"import fcntl, sys\nf = open({str(db) + '.writers'!r})\n"
        "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)"
    )
    another = lambda: subprocess.run([sys.executable, "-c", probe], check=False, timeout=30).returncode  # noqa: E731
    try:
        with app.recorder.datastore.transaction(commit=True):
            assert another() == 3  # another process waits its turn
        with app.recorder.datastore.transaction(commit=False):
            assert another() == 0  # readers take no turn
        assert another() == 0
    finally:
        app.close()

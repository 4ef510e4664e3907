"""The deployment's tables: created by whichever process starts first, on both event stores."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eventsourcing.persistence import InfrastructureFactory, InternalError, OperationalError
from eventsourcing.utils import Environment

from runtime import System
from runtime.settings import Settings

STARTS = """
import json, sys, time
from runtime import System
from runtime.settings import Settings
import pathlib; pathlib.Path(sys.argv[2], str(__import__("os").getpid())).touch(); sys.stdin.read()  # imported: wait for the others
with System(Settings.from_env(), json.loads(sys.argv[1])) as system:
    system.mailer()  # the mailer's tracking table too
"""

RECORDERS = """
import json, sys, time
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
factory = InfrastructureFactory.construct(Environment("agora", json.loads(sys.argv[1])))
import pathlib; pathlib.Path(sys.argv[2], str(__import__("os").getpid())).touch(); sys.stdin.read()  # imported: wait for the others
factory.tracking_recorder()
factory.application_recorder()
"""


def together(script: str, env: dict[str, str], tmp_path: Path, n: int = 8) -> None:
    """Run `script` in `n` processes, released together once each has imported (it marks a file in
    `ready`, then reads its stdin to the end); all must succeed."""
    ready = tmp_path / "ready"
    ready.mkdir()
    starting = [subprocess.Popen([sys.executable, "-c", script, json.dumps(env), str(ready)], stdin=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(n)]
    deadline = time.monotonic() + 60
    while len(list(ready.iterdir())) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    for p in starting:
        p.stdin.close()  # go
    failed = []
    for p in starting:
        with p.stderr:
            failed.append(p.stderr.read().decode()[-2000:])
        p.wait(timeout=120)
    assert [p.returncode for p in starting] == [0] * n, "\n".join(failed)


def test_processes_starting_together_on_a_new_store_create_its_tables_in_turn(store_env: dict[str, str], tmp_path: Path) -> None:
    """`agora serve` starts its API processes and its worker at once, and a deployment may start several
    hosts at once: each creates the tables it uses if they are missing. On PostgreSQL they would race in
    the catalogue ("tuple concurrently updated"), on SQLite in the library's tracking table (its migration
    row inserted twice); they take turns instead, and every one starts."""
    together(STARTS, store_env, tmp_path)


def test_the_librarys_recorders_create_their_tables_in_turn(store_env: dict[str, str], tmp_path: Path) -> None:
    """The race at its narrowest: the library's recorders alone, made at the same moment. Without the
    lock, SQLite's tracking recorder fails in most processes (it looks for its migration row before
    its transaction, and all but one insert it again)."""
    together(RECORDERS, store_env, tmp_path)


def test_a_database_that_is_down_raises_the_stores_own_error_which_the_worker_waits_out() -> None:
    """The worker retries the store's errors at start (the database may be starting); taking the
    schema lock on a PostgreSQL that does not answer must raise one of those, not psycopg's."""
    down = {
        "PERSISTENCE_MODULE": "store.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1",
        "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": "nowhere", "POSTGRES_CONNECT_TIMEOUT": "2",
    }
    with pytest.raises(OperationalError):
        System(Settings(), down)


def test_a_connection_the_server_ends_while_creating_tables_is_tried_once_more(
    settings: Settings, store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL ends a connection idle in its transaction past the library's 5 s (a process stalled
    under load): the process starts anyway, creating again, which is idempotent."""
    recorder = type(InfrastructureFactory.construct(Environment(env=store_env)).application_recorder())
    create, failures = recorder.create_table, []

    def ended_once(self: object) -> None:
        if not failures:
            failures.append(1)
            raise InternalError("terminating connection due to idle-in-transaction timeout")
        create(self)

    monkeypatch.setattr(recorder, "create_table", ended_once)
    with System(settings, store_env) as system:
        assert system.app.head() == 0 and failures == [1]
    assert "creating tables: terminating connection due to idle-in-transaction timeout; once more" in caplog.text

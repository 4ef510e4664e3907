"""The deployment's tables: created by whichever process starts first, on both event stores."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from eventsourcing.persistence import OperationalError

from runtime import System
from runtime.settings import Settings

STARTS = """
import json, sys, time
from runtime import System
from runtime.settings import Settings
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # imports done: start together
with System(Settings.from_env(), json.loads(sys.argv[1])) as system:
    system.mailer()  # the mailer's tracking table too
"""

RECORDERS = """
import json, sys, time
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
factory = InfrastructureFactory.construct(Environment("agora", json.loads(sys.argv[1])))
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
factory.tracking_recorder()
factory.application_recorder()
"""


def together(script: str, env: dict[str, str], n: int = 8) -> None:
    """Run `script` in `n` processes that do their work at the same moment, once imported; all must succeed."""
    at = str(time.time() + 4)
    starting = [subprocess.Popen([sys.executable, "-c", script, json.dumps(env), at], stderr=subprocess.PIPE) for _ in range(n)]
    failed = [p.communicate(timeout=120)[1].decode()[-2000:] for p in starting]
    assert [p.returncode for p in starting] == [0] * n, "\n".join(failed)


def test_processes_starting_together_on_a_new_store_create_its_tables_in_turn(store_env: dict[str, str]) -> None:
    """`agora serve` starts its API processes and its worker at once, and a deployment may start several
    hosts at once: each creates the tables it uses if they are missing. On PostgreSQL they would race in
    the catalogue ("tuple concurrently updated"), on SQLite in the library's tracking table (its migration
    row inserted twice); they take turns instead, and every one starts."""
    together(STARTS, store_env)


def test_the_librarys_recorders_create_their_tables_in_turn(store_env: dict[str, str]) -> None:
    """The race at its narrowest: the library's recorders alone, made at the same moment. Without the
    lock, SQLite's tracking recorder fails in most processes (it looks for its migration row before
    its transaction, and all but one insert it again)."""
    together(RECORDERS, store_env)


def test_a_database_that_is_down_raises_the_stores_own_error_which_the_worker_waits_out() -> None:
    """The worker retries the store's errors at start (the database may be starting); taking the
    schema lock on a PostgreSQL that does not answer must raise one of those, not psycopg's."""
    down = {
        "PERSISTENCE_MODULE": "store.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1",
        "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": "nowhere", "POSTGRES_CONNECT_TIMEOUT": "2",
    }
    with pytest.raises(OperationalError):
        System(Settings(), down)

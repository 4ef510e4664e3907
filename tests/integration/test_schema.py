"""The deployment's tables: created by whichever process starts first, on both event stores."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from eventsourcing.persistence import OperationalError

from runtime import System
from runtime.settings import Settings

STARTS = """
import json, sys
from runtime import System
from runtime.settings import Settings
with System(Settings.from_env(), json.loads(sys.argv[1])) as system:
    system.mailer()  # the mailer's tracking table too
"""


def test_processes_starting_together_on_a_new_store_create_its_tables_in_turn(store_env: dict[str, str]) -> None:
    """`agora serve` starts its API processes and its worker at once, and a deployment may start several
    hosts at once: each creates the tables it uses if they are missing. On PostgreSQL they would race in
    the catalogue ("tuple concurrently updated"); they take turns instead, and every one starts."""
    starting = [subprocess.Popen([sys.executable, "-c", STARTS, json.dumps(store_env)], stderr=subprocess.PIPE) for _ in range(8)]
    failed = [p.communicate(timeout=120)[1].decode()[-2000:] for p in starting]
    assert [p.returncode for p in starting] == [0] * 8, "\n".join(failed)



def test_a_database_that_is_down_raises_the_stores_own_error_which_the_worker_waits_out() -> None:
    """The worker retries the store's errors at start (the database may be starting); taking the
    schema lock on a PostgreSQL that does not answer must raise one of those, not psycopg's."""
    down = {
        "PERSISTENCE_MODULE": "store.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1",
        "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": "nowhere", "POSTGRES_CONNECT_TIMEOUT": "2",
    }
    with pytest.raises(OperationalError):
        System(Settings(), down)

"""PostgreSQL as deployments set it up: trust or peer authentication (no password), a schema not
created yet, a variable missing. Every `agora` process starts, or stops in one line naming the variable."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from cli.main import main
from runtime import System
from runtime.settings import Settings
from tests.conftest import POSTGRES, REDIS_URL
from workers import views


@pytest.fixture
def schema(monkeypatch: pytest.MonkeyPatch, redis_prefix: str) -> Iterator[str]:
    """An operator's environment for PostgreSQL with no POSTGRES_PASSWORD, naming a schema that does not exist yet."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    env = {
        "PERSISTENCE_MODULE": "store.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1", "POSTGRES_USER": "postgres",
        "POSTGRES_SCHEMA": name, "REDIS_URL": REDIS_URL, "AGORA_REDIS_PREFIX": redis_prefix,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    yield name
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def exists(name: str) -> bool:
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone() is not None


def status() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["status"])
    assert exit_.value.code == 1  # no worker follows the views here


def test_status_without_a_password_creates_the_missing_schema(schema: str, capsys: pytest.CaptureFixture[str]) -> None:
    status()
    assert capsys.readouterr().out.startswith("log head: 0")
    assert exists(schema)
    status()  # and finds it the next time
    assert capsys.readouterr().out.startswith("log head: 0")


def test_work_without_a_password_creates_the_missing_schema(schema: str) -> None:
    worker = subprocess.Popen([sys.executable, "-c", "from cli.main import main; main()", "work", "form"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not exists(schema) or not followed():
            assert time.monotonic() < deadline and worker.poll() is None, "the worker did not start"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)
    assert worker.returncode == 0, errors


def followed() -> bool:
    with System(Settings.from_env()) as system:
        return views.followed(system.app)["form"]


@pytest.mark.parametrize("missing", ["POSTGRES_USER", "POSTGRES_HOST", "POSTGRES_DBNAME"])
def test_a_missing_variable_stops_the_process_naming_it(schema: str, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.delenv(missing)
    with pytest.raises(SystemExit, match=f"^agora: .*'{missing}'$"):
        main(["status"])


def test_a_schema_the_user_may_not_create_stops_the_process_naming_the_variable(schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    role = f"r_{uuid.uuid4().hex[:12]}"  # by default, a role may not create schemas in a database it does not own
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        monkeypatch.setenv("POSTGRES_USER", role)
        with pytest.raises(SystemExit, match=f"^agora: POSTGRES_SCHEMA: schema '{schema}' does not exist, and cannot be created: permission denied"):
            main(["status"])
        assert not exists(schema)
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("name", ["Agora", "agora-x", "1agora", "agora x"])
def test_a_schema_name_the_library_cannot_use_stops_the_process_naming_the_variable(
    schema: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """eventsourcing names the schema unquoted in places (its composite types): capitals would be another schema."""
    monkeypatch.setenv("POSTGRES_SCHEMA", name)
    with pytest.raises(SystemExit, match="^agora: POSTGRES_SCHEMA: .* must be lower-case letters"):
        main(["status"])
    assert not exists(name)

"""Fixtures that start real things: an SQLite file or a PostgreSQL schema, a Redis key space, the app."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
import redis
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from litestar.testing import AsyncTestClient

from api.app import create_app
from domain.consultations.service import Submission
from domain.staff.member import Role
from domain.consultations.consultation import Definition, read_definition
from runtime import System
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "consultations" / "code-of-conduct-2026.toml"
SLUG = "code-of-conduct-2026"
POSTGRES = "dbname=test host=127.0.0.1 port=5432 user=postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
# For tests of what the API decides before the store is written (roles, refusals of bad input):
# the store plays no part, so they run on one (each test's set-up is most of its time).
ON_SQLITE_ONLY = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An empty event store of each kind the project supports."""
    if request.param == "sqlite":
        yield {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(tmp_path / "agora.sqlite")}
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield {
        "PERSISTENCE_MODULE": "store.postgres",
        "POSTGRES_DBNAME": "test",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "POSTGRES_SCHEMA": schema,
    }
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


SECRET = "t" * 48  # the deployment's, as its servers and an operator's commands have it


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder of the test's own (the mailer's outbox, the local secret)."""
    path = tmp_path / "data"
    monkeypatch.setenv("AGORA_DATA_DIR", str(path))
    monkeypatch.setenv("AGORA_SECRET", SECRET)
    return path


@pytest.fixture
def seed() -> Definition:
    return read_definition(SEED.read_bytes())


@pytest.fixture
def system(store_env: dict[str, str], settings: Settings, seed: Definition) -> Iterator[System]:
    """The application and its contexts on a fresh store holding the seed consultation."""
    with System(settings, store_env) as system:
        system.consultations.load(seed)
        yield system


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key space of our own on the real Redis, removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def sync_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def settings(redis_prefix: str, data_dir: Path) -> Settings:
    # argon2 at full cost would dominate the suite's time.
    return Settings(
        data_dir=str(data_dir), redis_url=REDIS_URL, redis_prefix=redis_prefix,
        rate_limit_per_minute=10_000, signup_rate_limit_per_minute=10_000, sign_in_rate_limit_per_minute=10_000,
        view_wait_seconds=5.0, secret=SECRET, password_profile="CHEAPEST",
        # Tests that count what was recorded run without a background writer; clustering is tested on its own.
        cluster_responses=False,
    )


@pytest.fixture
async def client(system: System, store_env: dict[str, str], settings: Settings):
    """The HTTP API on the seeded store, with its followers running in-process."""
    async with AsyncTestClient(create_app(settings, store_env)) as test_client:
        await caught_up(test_client, system.app.head())
        yield test_client


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` served by uvicorn on a loopback port, on an event loop (and Redis client) of its own."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


@pytest.fixture
def live_url(system: System, store_env: dict[str, str], settings: Settings) -> Iterator[str]:
    """The API served by uvicorn on a loopback port, for tests that need requests really in flight together."""
    with served(create_app(settings, store_env)) as url:
        yield url


def raw_storage(store_env: dict[str, str]) -> bytes:
    """Every byte the event store and its key store hold on disk: the SQLite file, or the files of
    every table, TOAST table and index in the PostgreSQL schema."""
    if store_env["PERSISTENCE_MODULE"] == "store.sqlite":
        db = Path(store_env["SQLITE_DBNAME"])
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        paths = conn.execute(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'i')"
            " UNION ALL SELECT pg_relation_filepath(c.reltoastrelid) FROM pg_class c"
            " WHERE c.relnamespace = %s::regnamespace AND c.reltoastrelid <> 0",
            (store_env["POSTGRES_SCHEMA"],) * 2,
        ).fetchall()
    files = [f for (path,) in paths for f in (data_dir / path, *data_dir.glob(f"{path}.*"))]  # with segments past 1 GB
    return b"".join(f.read_bytes() for f in files if f.exists())


class Inbox:
    """An aiosmtpd handler that keeps what it receives, and whether it came over TLS."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.tls: list[bool] = []
        self.authenticated: list[bool] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.tls.append(server.transport.get_extra_info("ssl_object") is not None)
        self.authenticated.append(bool(session.authenticated))
        return "250 OK"

    def received(self) -> list[EmailMessage]:
        return [email.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes]


def text(part: EmailMessage, body: str = "plain") -> str:
    """The content of a text part (the body by default), with the wire's CRLF line ends made Python's."""
    if part.is_multipart():
        part = part.get_body((body,))
    return part.get_content().replace("\r\n", "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtpd() -> Iterator[Callable[..., int]]:
    """smtpd(handler, **options) starts an SMTP server (on 127.0.0.1 unless `hostname` says) and returns its port."""
    controllers: list[Controller] = []

    def start(handler: Inbox, hostname: str = "127.0.0.1", **options: Any) -> int:
        controller = Controller(handler, hostname=hostname, port=free_port(), **options)
        controller.start()
        controllers.append(controller)
        return controller.port

    yield start
    for controller in controllers:
        controller.stop()


async def caught_up(client: AsyncTestClient, position: int) -> None:
    """Wait (bounded, server-side) until both views have processed `position`."""
    for path in (f"/consultations/{SLUG}", f"/consultations/{SLUG}/stats"):
        r = await client.get(path, params={"after": position})
        assert r.status_code == 200, r.text


# Staff: one admin bootstrapped from the command line, then one member per role.

PASSWORD = "correct horse battery staple"
ROLES = ["reviewer", "editor", "auditor", "admin"]


def enrol_everyone(system: System) -> dict[str, UUID]:
    """One admin bootstrapped from the command line, then one member per role enrolled by that admin."""
    admin = system.staff.enrol("root@example.org", "Root", PASSWORD, [Role.ADMIN], by=None)
    ids = {"admin": admin}
    for role in ("reviewer", "editor", "auditor"):
        ids[role] = system.staff.enrol(f"{role}@example.org", role.title(), PASSWORD, [Role(role)], by=admin)
    ids["reviewer2"] = system.staff.enrol("reviewer2@example.org", "Second", PASSWORD, [Role.REVIEWER], by=admin)
    return ids


def submit(system: System, count: int) -> list[UUID]:
    receipts = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read", "works_well": f"answer {i}"}) for i in range(count)])
    return [r.id for r in receipts]  # type: ignore[union-attr]


async def token(client: Any, email: str) -> dict[str, str]:
    r = await client.post("/staff/token", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def staff(system: System) -> dict[str, UUID]:
    return enrol_everyone(system)


@pytest.fixture
async def headers(client: AsyncTestClient, staff: dict[str, UUID]) -> dict[str, dict[str, str]]:
    who = {role: f"{role}@example.org" for role in ("reviewer", "editor", "auditor", "reviewer2")}
    who["admin"] = "root@example.org"
    return {role: await token(client, email) for role, email in who.items()}

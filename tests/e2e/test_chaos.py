"""Chaos: `agora serve` under concurrent keyed submissions while its processes are killed at random.

Clients submit with an Idempotency-Key and retry the same key and body after any lost or failed
answer, as a client should. Meanwhile API processes, the worker, the embedded Redis and once the
whole server are SIGKILLed. Afterwards every acknowledged id is in the log exactly once, no key is
recorded twice, the views equal a fresh rebuild, and no redis-server is left. bench/chaos.py runs
the same longer and prints its figures.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import httpx
import redis
from eventsourcing.utils import get_topic

from domain.consultations.response import Response
from projections.live import VIEWS
from runtime import System
from runtime.settings import Settings
from tests.conftest import SLUG
from tests.e2e.test_serve import Server, gone, redis_processes
from tests.integration.test_projections import dump
from workers import views
from workers.follower import rebuild

SECONDS = 20  # of chaos per store
CLIENTS = 8
CHOICES = ["not_aware", "aware_not_read", "read", "know_well"]


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Clients:
    """Threads submitting keyed responses until stopped, each retrying one key until it is answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: dict[str, str] = {}  # key -> the response id answered
        self.conflicts: list[str] = []  # a key answered with two different ids
        self.retries = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def __enter__(self) -> Clients:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a client never got its answer"

    def _run(self, i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stopping.is_set():
                key = str(uuid.UUID(int=rng.getrandbits(128)))
                body = {"answers": {"familiarity": rng.choice(CHOICES), "join_session": rng.random() < 0.5}}
                self._until_answered(http, key, body)

    def _until_answered(self, http: httpx.Client, key: str, body: dict[str, object]) -> None:
        """Retry the same key and body until the server answers it (even after `stopping`: an
        unanswered key may have been recorded, and must be found in the log like the others)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                r = http.post(f"/consultations/{SLUG}/responses", json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code == 201:
                with self._lock:
                    first = self.acknowledged.setdefault(key, r.json()["id"])
                    if first != r.json()["id"]:
                        self.conflicts.append(key)
                if random.random() < 0.05:  # now and then, ask again: the answer must be the same
                    with contextlib.suppress(httpx.TransportError):
                        again = http.post(f"/consultations/{SLUG}/responses", json=body, headers={"Idempotency-Key": key})
                        if again.status_code == 201 and again.json()["id"] != first:
                            self.conflicts.append(key)
                return
            assert r is None or r.status_code in (409, 503), f"{r.status_code}: {r.text}"
            with self._lock:
                self.retries += 1
            time.sleep(0.05)
        raise AssertionError(f"no answer for key {key} in 120 s")


def drain(server: Server, into: list[str]) -> threading.Thread:
    """Read the server's output as it comes (a full pipe would stall it)."""

    def read() -> None:
        with server.process.stdout as out:
            into.extend(line.decode() for line in out)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


class Outcome(NamedTuple):
    acknowledged: int  # keys answered with a 201
    found: int  # of those ids, how many are in the log
    lost: int  # acknowledged ids not in the log
    duplicated: int  # ids recorded more than once, and keys answered with two ids
    unexpected: int  # responses in the log that no key was answered with
    retries: int
    kills: dict[str, int]
    views_differ: list[str]  # the keys in which the live views differ from a fresh fold of the log (and "stats" if a 201 is not counted)
    output: str  # what the server printed


def chaos(data_dir: Path, store_env: dict[str, str], seconds: float) -> Outcome:
    """Keyed submissions for `seconds` while the server's processes are killed at random (once, the
    whole server); then wait for the views and compare the log with what was acknowledged. Whatever
    happens, no server is left running (its children go with it)."""
    servers: list[Server] = []
    try:
        return _chaos(data_dir, store_env, seconds, servers)
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def _chaos(data_dir: Path, store_env: dict[str, str], seconds: float, servers: list[Server]) -> Outcome:
    env = {**store_env, "AGORA_RATE_LIMIT_PER_MINUTE": "0"}  # every client is 127.0.0.1
    output: list[str] = []
    server = Server(data_dir, "--workers", "2", extra=env)
    servers.append(server)
    drain(server, output)
    rng = random.Random(12)
    kills: Counter[str] = Counter()
    with Clients(server.url) as clients:
        deadline = time.monotonic() + seconds
        restarted = False
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 1.2))
            if not restarted and time.monotonic() > deadline - seconds / 2:
                # Once, the whole server: every child goes with it, and it starts again on the same port.
                pids = children(server.process.pid)
                server.process.kill()
                server.process.wait()
                assert gone(pids), "a child outlived the killed server"
                kills["server"] += 1
                server = Server(data_dir, "--workers", "2", port=server.port, extra=env)
                servers.append(server)
                drain(server, output)
                restarted = True
                continue
            targets = {pid: cmdline(pid) for pid in children(server.process.pid)}
            kind = rng.choice(["api", "api", "worker", "redis"])
            chosen = [pid for pid, line in targets.items() if {"api": "api(int", "worker": " work", "redis": "redis-server"}[kind] in line]
            if chosen:
                os.kill(rng.choice(chosen), signal.SIGKILL)
                kills[kind] += 1
        clients.stopping.set()
    acknowledged = set(clients.acknowledged.values())

    settings = Settings(data_dir=str(data_dir), redis_url=f"unix://{data_dir.resolve() / 'redis.sock'}")
    with System(settings, store_env) as system, system.redis() as client:
        head = system.app.head()
        deadline = time.monotonic() + 30
        while True:  # Redis may have been killed last: the supervisor is starting it again
            with contextlib.suppress(redis.ConnectionError):
                if min(views.positions(system.app, client, "agora").values()) >= head:
                    break
            assert time.monotonic() < deadline, f"the views did not catch up to {head}"
            time.sleep(0.1)
        counted = httpx.get(f"{server.url}/consultations/{SLUG}/stats", params={"after": head}).json()["responses"]
        for projection, view in VIEWS.values():
            rebuild(system.app, projection, view.new_generation(client, "rebuilt"))
        live, rebuilt = dump(client, "agora"), dump(client, "rebuilt")
        views_differ = sorted(k for k in live.keys() | rebuilt.keys() if live.get(k) != rebuilt.get(k))
        if counted != len(acknowledged):
            views_differ.append(f"stats: {counted} responses counted, {len(acknowledged)} acknowledged")
        topic = get_topic(Response.Submitted)
        recorded = Counter(
            str(n.originator_id) for n in system.app.recorder.select_notifications(start=0, limit=10**9) if n.topic == topic
        )
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0, "".join(output[-50:])
    assert not redis_processes(data_dir), "a redis-server was left behind"
    return Outcome(
        acknowledged=len(acknowledged), found=len(acknowledged & set(recorded)), lost=len(acknowledged - set(recorded)),
        duplicated=sum(1 for n in recorded.values() if n > 1) + len(clients.conflicts), unexpected=len(set(recorded) - acknowledged),
        retries=clients.retries, kills=dict(kills), views_differ=views_differ, output="".join(output),
    )


def test_chaos_loses_nothing_and_records_nothing_twice(tmp_path: Path, store_env: dict[str, str]) -> None:
    outcome = chaos(tmp_path / "var", store_env, SECONDS)
    assert outcome.acknowledged > 100 and {"api", "worker", "redis", "server"} <= set(outcome.kills), outcome
    assert (outcome.lost, outcome.duplicated, outcome.unexpected) == (0, 0, 0), outcome
    assert not outcome.views_differ, f"the live views differ from a fresh fold of the log in {outcome.views_differ[:10]}"
    assert "Traceback" not in outcome.output.replace("ConnectionError", ""), outcome.output
    print(f"\n{store_env['PERSISTENCE_MODULE']}: {outcome._replace(output='')}")

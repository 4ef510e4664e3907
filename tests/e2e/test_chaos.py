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

import httpx
from eventsourcing.utils import get_topic

from domain.consultations.response import Response
from projections.live import VIEWS
from runtime import System
from runtime.settings import Settings
from tests.conftest import SLUG
from tests.e2e.test_serve import Server, gone, redis_processes
from tests.integration.test_projections import dump
from workers import views
from workers.follower import Follower

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


def test_chaos_loses_nothing_and_records_nothing_twice(tmp_path: Path, store_env: dict[str, str]) -> None:
    data_dir = tmp_path / "var"
    env = {**store_env, "AGORA_RATE_LIMIT_PER_MINUTE": "0"}  # every client is 127.0.0.1
    output: list[str] = []
    server = Server(data_dir, "--workers", "2", extra=env)
    drain(server, output)
    rng = random.Random(12)
    kills: Counter[str] = Counter()
    with Clients(server.url) as clients:
        deadline = time.monotonic() + SECONDS
        restarted = False
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 1.2))
            if not restarted and time.monotonic() > deadline - SECONDS / 2:
                # Once, the whole server: every child goes with it, and it starts again on the same port.
                pids = children(server.process.pid)
                server.process.kill()
                server.process.wait()
                assert gone(pids), "a child outlived the killed server"
                kills["server"] += 1
                server = Server(data_dir, "--workers", "2", port=server.port, extra=env)
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
    acknowledged = clients.acknowledged
    assert len(acknowledged) > 100 and kills["api"] and kills["worker"] and kills["redis"], (len(acknowledged), kills)
    assert not clients.conflicts, f"keys answered with two ids: {clients.conflicts[:5]}"

    # The views catch up, and equal a fresh rebuild of the log.
    settings = Settings(data_dir=str(data_dir), redis_url=f"unix://{data_dir.resolve() / 'redis.sock'}")
    with System(settings, store_env) as system, system.redis() as client:
        head = system.app.head()
        deadline = time.monotonic() + 30
        while min(views.positions(system.app, client, "agora").values()) < head:
            assert time.monotonic() < deadline, f"the views did not catch up: {views.positions(system.app, client, 'agora')} < {head}"
            time.sleep(0.1)
        assert httpx.get(f"{server.url}/consultations/{SLUG}/stats", params={"after": head}).json()["responses"] == len(acknowledged)
        for projection, view in VIEWS.values():
            Follower(system.app, projection(view(client, "rebuilt"))).catch_up(head)
        assert dump(client, "agora") == dump(client, "rebuilt")

        # Every acknowledged id is in the log exactly once, and nothing else was recorded.
        topic = get_topic(Response.Submitted)
        recorded = Counter(
            str(n.originator_id) for n in system.app.recorder.select_notifications(start=0, limit=10**9) if n.topic == topic
        )
    assert max(recorded.values()) == 1
    assert set(recorded) == set(acknowledged.values())

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0, "".join(output[-50:])
    assert not redis_processes(data_dir), "a redis-server was left behind"
    assert "Traceback" not in "".join(output).replace("ConnectionError", ""), "".join(output)
    print(f"\n{store_env['PERSISTENCE_MODULE']}: {len(acknowledged)} acknowledged, {clients.retries} retries, kills {dict(kills)}")

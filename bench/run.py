"""Benchmark: Agora served the way a user runs it, loaded by real HTTP clients on loopback.

Run from the project folder:  make bench  (or  .venv/bin/python bench/run.py [options])
e.g.  make bench BENCH_ARGS="--duration 5 --rebuild-events 20000 --only sqlite --only bare"

For each store (SQLite, PostgreSQL) it starts `agora serve` in its own process and measures
  - sustained POST /responses per second with --connections clients (wrk, closed loop), p50 and p99;
  - at a fixed --rate (default: half the sustained rate just measured, as the targets are set;
    open loop, asyncio client): POST p99, measured from each request's
    scheduled time, and projection lag p99: from a 201 to the answer of the
    `GET stats?after=position` sent right after it, for every 10th submission;
  - the server's CPU time per 1,000 POSTs, its API processes summed and its worker apart;
  - the sustained POST rate again without the checkpointer and the clusterer (`agora serve --api-only`
    beside an `agora work` running the followers and the mailer only), and the CPU it then takes;
  - `agora rebuild` speed on a store filled to --rebuild-events events (on PostgreSQL, vacuumed
    first, as autovacuum leaves a store that was not all written a moment ago);
and the same POST load against bench/bare.py (the same body and one SQLite row per request,
no event sourcing), with its CPU per 1,000 POSTs. Each client's ceiling is estimated from its CPU
use (rate / share of a core).

Needs wrk (installed with apt-get if missing), Redis at 127.0.0.1:6379 and, for PostgreSQL,
a server at 127.0.0.1:5432 with database `test` (trust auth). Everything it creates (temporary
folder, Redis keys under a fresh prefix, a PostgreSQL schema) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import redis
import uvloop

from domain.consultations.consultation import read_definition
from domain.consultations.service import Submission
from runtime import System
from runtime.settings import Settings
from workers import views

ROOT = Path(__file__).resolve().parent.parent
AGORA = str(ROOT / ".venv" / "bin" / "agora")
SLUG = "code-of-conduct-2026"
ANSWERS = {"familiarity": "read", "works_well": "some text", "join_session": True}
BODY = msgspec.json.encode({"answers": ANSWERS})
POST = (
    f"POST /consultations/{SLUG}/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
).encode() + BODY
LAG_SAMPLE = 10  # every 10th submission of the fixed-rate phase also measures projection lag
WARM_UP = 2  # seconds of load before each measured wrk run
# Targets on the reference machine (2 cores)
POSTS_TARGET = {"sqlite": 4000, "postgres": 3000}  # durable submissions per second
P99_TARGET = 0.050  # seconds, POST p99 at --rate
LAG_TARGET = 0.100  # seconds, projection lag p99 at --rate
REBUILD_TARGET = 50_000  # events per second, each view
RATIO_TARGET = 1.0  # durable POSTs per second against the bare endpoint's, in the same run (issue 12)

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def role(pid: int) -> str:
    """What a server's process does: `agora serve`'s supervisor, an API process (or bench/bare.py), the worker, the clusterer, Redis."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if any(b"import api" in a for a in argv):
        return "api"
    if b"work" in argv:
        return "clusterer" if b"clusterer" in argv else "worker"
    return "redis" if b"redis" in argv[0] else "supervisor" if b"serve" in argv else "api"


def cpu_seconds(*roots: int) -> dict[str, float]:
    """CPU time (user and system) so far of the process trees under `roots`, summed by `role`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError):
                pass  # gone meanwhile
    spent: dict[str, float] = {}
    for root in roots:
        tree, i = [root], 0
        while i < len(tree):
            tree += [pid for pid, parent in parents.items() if parent == tree[i]]
            i += 1
        for pid in tree:
            try:
                fields, name = _stat(pid), role(pid)
            except OSError:
                continue
            spent[name] = spent.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return spent


@contextmanager
def server(command: list[str], env: dict[str, str], log_file: Path, listens: bool = True):
    """A server process, listening on env["PORT"] (unless not `listens`) until the block ends."""
    port = int(env["PORT"])
    with open(log_file, "ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while listens:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command} did not start:\n{log_file.read_text()[-3000:]}") from None
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wrk(script: Path, port: int, seconds: int, connections: int, *pids: int) -> dict[str, Any]:
    """Closed-loop POST load; requests per second (201s only), latency percentiles, CPU use: the
    server's processes (`pids` and their children) by role, in seconds per 1,000 201s."""
    children, server_cpu = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_seconds(*pids)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
         f"http://127.0.0.1:{port}/consultations/{SLUG}/responses"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = cpu_seconds(*pids)
    requests, micros, bad_status, socket_errors, p50, p99 = map(int, re.search(r"^RESULT (.+)$", out, re.M).group(1).split())
    wall, ok = micros / 1e6, requests - bad_status
    return {
        "ok": ok, "rate": ok / wall, "errors": bad_status + socket_errors, "p50": p50 / 1e6, "p99": p99 / 1e6,
        "server_cpu": (sum(spent.values()) - sum(server_cpu.values())) / wall,
        "cpu": {k: (v - server_cpu.get(k, 0.0)) / max(ok, 1) * 1000 for k, v in spent.items()},
        "wrk_cpu": (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / wall,
    }


def cpu_note(w: dict[str, Any]) -> str:
    """The server's CPU per 1,000 POSTs by role, e.g. `api 451 + worker 237 = 688 ms`."""
    parts = {k: v for k, v in w["cpu"].items() if k != "supervisor"}
    return " + ".join(f"{k} {v * 1000:,.0f}" for k, v in sorted(parts.items())) + f" = {sum(parts.values()) * 1000:,.0f} ms"


class Connection:
    """HTTP/1.1 keep-alive on raw streams, one request in flight."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        return int(head[9:12]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def fixed_rate(port: int, rate: float, seconds: float) -> dict[str, object]:
    """Open-loop POSTs at `rate`; latency counts from each request's scheduled time."""
    idle: list[Connection] = []
    slots = asyncio.Semaphore(512)  # bounds the connections a stalled server can make us open
    posts: list[float] = []
    lags: list[float] = []
    errors: Counter[str] = Counter()
    acknowledged = 0

    async def one(i: int, due: float) -> None:
        nonlocal acknowledged
        async with slots:
            conn = None
            try:
                async with asyncio.timeout(10):
                    conn = idle.pop() if idle else await Connection.open(port)
                    try:
                        status, body = await conn.request(POST)
                    except (OSError, asyncio.IncompleteReadError):
                        # The server closes connections idle past its keep-alive timeout: as any
                        # HTTP client does, send again on a fresh one (nothing was received).
                        conn.close()
                        conn = await Connection.open(port)
                        status, body = await conn.request(POST)
                    answered = time.perf_counter()
                    posts.append(answered - due)
                    acknowledged += status == 201
                    if status != 201:
                        errors[f"POST {status}"] += 1
                    elif i % LAG_SAMPLE == 0:
                        position = msgspec.json.decode(body)["position"]
                        status, _ = await conn.request(f"GET /consultations/{SLUG}/stats?after={position} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                        lags.append(time.perf_counter() - answered)
                        if status != 200:
                            errors[f"GET stats {status}"] += 1
                idle.append(conn)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                errors[type(e).__name__] += 1
                if conn:
                    conn.close()

    cpu = time.process_time()
    start = time.perf_counter() + 0.05
    late = 0.0
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late = max(late, time.perf_counter() - due)
        tasks.append(asyncio.create_task(one(i, due)))
    sending = time.perf_counter() - start
    cpu = (time.process_time() - cpu) / sending
    await asyncio.wait(tasks, timeout=15)  # each request has its own 10 s limit
    for conn in idle:
        conn.close()
    return {"rate": len(tasks) / sending, "posts": posts, "lags": lags, "errors": errors, "ok": acknowledged, "late": late, "client_cpu": cpu}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ready(port: int) -> None:
    """Wait until the API answers (the supervisor listens before its API processes have started)."""

    async def run() -> None:
        while True:
            try:
                conn = await Connection.open(port)
                status, _ = await conn.request(f"GET /consultations/{SLUG} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                conn.close()
                if status == 200:
                    return
            except (OSError, asyncio.IncompleteReadError):
                pass
            await asyncio.sleep(0.2)

    asyncio.run(asyncio.wait_for(run(), 60))


def settle(port: int) -> tuple[int, float]:
    """Submit one response and wait until the stats view shows it: (responses counted, seconds waited)."""

    async def run() -> tuple[int, float]:
        conn = await Connection.open(port)
        status, body = await conn.request(POST)
        assert status == 201, body
        started, position = time.perf_counter(), msgspec.json.decode(body)["position"]
        while True:  # each GET waits up to the server's view wait, then answers 503
            status, body = await conn.request(f"GET /consultations/{SLUG}/stats?after={position} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            if status == 200:
                conn.close()
                return msgspec.json.decode(body)["responses"], time.perf_counter() - started

    return asyncio.run(asyncio.wait_for(run(), 120))


def fill(store_env: dict[str, str], events: int) -> None:
    """Top the log up to `events` events with responses, 1,000 per transaction."""
    with System(Settings(data_dir=tempfile.gettempdir(), secret="fills the log; signs nothing"), store_env) as system:
        system.consultations.load(read_definition((ROOT / "consultations" / f"{SLUG}.toml").read_bytes()))
        while (head := system.app.head()) < events:
            refused = [r for r in system.consultations.submit_batch([Submission(SLUG, ANSWERS)] * min(1000, events - head)) if isinstance(r, Exception)]
            if refused:
                raise RuntimeError(f"filling the log: {len(refused)} submissions refused, e.g. {refused[0]!r}")
        table = system.app.recorder.events_table_name  # type: ignore[attr-defined]
    if "POSTGRES_SCHEMA" in store_env:
        # As autovacuum leaves a store that was not all written a moment ago: the first read of rows just
        # written does the server's housekeeping on them (hint bits), 4.5 s for 100,000 where a second read took 1.5 s.
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as db:
            db.execute(f"VACUUM ANALYZE {store_env['POSTGRES_SCHEMA']}.{table}")


def rebuild(env: dict[str, str]) -> dict[str, tuple[int, float]]:
    out = subprocess.run([AGORA, "rebuild"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=900, check=True).stdout
    return {name: (int(n), int(n) / float(s)) for name, n, s in re.findall(r"rebuilt (\w+): up to position (\d+) in ([\d.]+)s", out)}


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []

    def add(
        self, what: str, backend: str, figure: str, target: float | None = None, value: float | None = None, at_most: bool = False,
        note: str = "", ratio: bool = False,
    ) -> None:
        if target is None:
            goal = verdict = ""
        else:
            goal = f">= {target:.2f}x" if ratio else f"<= {target * 1000:.0f} ms" if at_most else f">= {target:,.0f}/s"
            verdict = "ok" if value is not None and (value <= target if at_most else value >= target) else "MISS"
        self.rows.append((what, backend, figure, goal, verdict, note))
        log(f"  {what} [{backend}]: {figure} {note}")

    def print(self) -> None:
        header = ("measurement", "backend", "figure", "target", "", "notes")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(len(header))]
        for row in [header, tuple("-" * w for w in widths), *self.rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def delete_keys(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def bench_service(backend: str, env: dict[str, str], store_env: dict[str, str], args: argparse.Namespace, script: Path, table: Table, folder: Path) -> float:
    """Load `agora serve` on one store, then rebuild its views; returns the sustained POST rate."""
    port = free_port()
    env = {**env, "PORT": str(port)}
    log(f"{backend}: agora serve on port {port}")
    with server([AGORA, "serve"], env, folder / f"{backend}.log") as process:
        ready(port)
        warm = wrk(script, port, WARM_UP, args.connections, process.pid)
        w = wrk(script, port, args.duration, args.connections, process.pid)
        _, behind = settle(port)
        table.add(f"POST/s, {args.connections} clients", backend, f"{w['rate']:,.0f}/s  p50 {ms(w['p50'])}  p99 {ms(w['p99'])}",
                  POSTS_TARGET[backend], w["rate"],
                  note=f"server {w['server_cpu']:.0%} CPU, wrk {w['wrk_cpu']:.0%}; views caught up {behind:.1f} s after"
                  + (f"; {w['errors']} errors" if w["errors"] else ""))
        table.add("server CPU per 1,000 POSTs", backend, cpu_note(w), note="API processes summed; the worker: followers, mailer, checkpointer")
        rate = args.rate or round(w["rate"] / 2)  # the targets' "half the measured capacity", by default
        f = uvloop.run(fixed_rate(port, rate, args.duration))
        p99, lag99 = percentile(f["posts"], 0.99), percentile(f["lags"], 0.99)
        note = f"sent {f['rate']:,.0f}/s, client {f['client_cpu']:.0%} CPU (ceiling ~{f['rate'] / max(f['client_cpu'], 0.01):,.0f}/s), late <= {ms(f['late'])}"
        if f["errors"]:
            note += ", errors: " + ", ".join(f"{n} {k}" for k, n in f["errors"].items())
        table.add(f"POST p99 at {rate:,.0f}/s", backend, f"{ms(p99)}  (p50 {ms(percentile(f['posts'], 0.5))})", P99_TARGET, p99, at_most=True, note=note)
        table.add(f"lag p99 at {rate:,.0f}/s", backend, f"{ms(lag99)}  (p50 {ms(percentile(f['lags'], 0.5))}, n={len(f['lags'])})", LAG_TARGET, lag99, at_most=True)
        # Every acknowledged submission must be counted (a wrk run that ends leaves a few unacknowledged ones recorded).
        acknowledged = warm["ok"] + w["ok"] + f["ok"] + 2  # and the two of settle()
        counted, _ = settle(port)
        if counted < acknowledged:
            table.add("201s counted in stats", backend, f"{counted:,} of {acknowledged:,}", note="LOST")
    # The checkpointer's and the clusterer's cost: the same load, the worker's followers and mailer running apart, without them.
    env = {**env, "PORT": str(free_port())}
    log(f"{backend}: agora serve --api-only and agora work without the checkpointer and the clusterer, on port {env['PORT']}")
    with (
        server([AGORA, "serve", "--api-only"], env, folder / f"{backend}-api.log") as process,
        server([AGORA, "work", *views.VIEWS, "mailer"], env, folder / f"{backend}-work.log", listens=False) as worker,
    ):
        ready(int(env["PORT"]))
        wrk(script, int(env["PORT"]), WARM_UP, args.connections, process.pid, worker.pid)
        without = wrk(script, int(env["PORT"]), args.duration, args.connections, process.pid, worker.pid)
    table.add("POST/s without checkpointer, clusterer", backend, f"{without['rate']:,.0f}/s  p99 {ms(without['p99'])}",
              note=f"with it {w['rate'] / without['rate'] - 1:+.0%} POST/s; server CPU per 1,000 POSTs {cpu_note(without)}")
    log(f"{backend}: filling the store to {args.rebuild_events:,} events, then agora rebuild")
    fill(store_env, args.rebuild_events)
    for name, (events, rate) in rebuild(env).items():
        table.add(f"rebuild {name} view, {events:,} events", backend, f"{rate:,.0f} events/s", REBUILD_TARGET, rate)
    return w["rate"]


def bench_bare(args: argparse.Namespace, script: Path, table: Table, folder: Path) -> float:
    port = free_port()
    log(f"bare: bench/bare.py on port {port}")
    command = [sys.executable, str(ROOT / "bench" / "bare.py"), str(port), str(folder / "bare.sqlite")]
    with server(command, {"PORT": str(port)}, folder / "bare.log") as process:
        wrk(script, port, WARM_UP, args.connections, process.pid)
        w = wrk(script, port, args.duration, args.connections, process.pid)
    table.add(f"POST/s, {args.connections} clients", "bare", f"{w['rate']:,.0f}/s  p50 {ms(w['p50'])}  p99 {ms(w['p99'])}",
              note=f"server {w['server_cpu']:.0%} CPU, wrk {w['wrk_cpu']:.0%} (wrk ceiling ~{w['rate'] / max(w['wrk_cpu'], 0.01):,.0f}/s)"
              + (f"; {w['errors']} errors" if w["errors"] else ""))
    table.add("server CPU per 1,000 POSTs", "bare", cpu_note(w), note="one process")
    return w["rate"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=int, default=15, help="seconds of each measured load phase (default 15)")
    p.add_argument("--connections", type=int, default=64, help="concurrent clients for the sustained POST rate (default 64)")
    p.add_argument("--rate", type=float, help="submissions per second of the fixed-rate phase (default: half the POST rate just measured on that store)")
    p.add_argument("--rebuild-events", type=int, default=100_000, help="events in the store that is rebuilt (default 100000)")
    p.add_argument("--only", action="append", choices=["bare", "sqlite", "postgres"], help="run only these (repeatable)")
    args = p.parse_args()
    only = args.only or ["bare", "sqlite", "postgres"]
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, timeout=300)

    run_id = secrets.token_hex(4)
    table = Table()
    rates: dict[str, float] = {}
    started = time.monotonic()
    with ExitStack() as cleanup:
        folder = Path(tempfile.mkdtemp(prefix="agora-bench-"))
        cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
        script = folder / "post.lua"
        script.write_text(WRK_SCRIPT % BODY.decode())
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        base_env = {
            "AGORA_CONSULTATIONS": str(ROOT / "consultations"), "AGORA_RATE_LIMIT_PER_MINUTE": "0",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        }
        if "bare" in only:
            rates["bare"] = bench_bare(args, script, table, folder)
        if "sqlite" in only:
            prefix = f"agora-bench-{run_id}-sqlite"
            cleanup.callback(delete_keys, client, prefix)
            data = folder / "sqlite"
            store_env = {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(data / "agora.sqlite")}
            env = {**base_env, "AGORA_DATA_DIR": str(data), "AGORA_REDIS_PREFIX": prefix}
            rates["sqlite"] = bench_service("sqlite", env, store_env, args, script, table, folder)
        if "postgres" in only:
            prefix, schema = f"agora-bench-{run_id}-postgres", f"agora_bench_{run_id}"
            cleanup.callback(delete_keys, client, prefix)
            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as db:
                db.execute(f"CREATE SCHEMA {schema}")

            def drop_schema() -> None:
                with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as db:
                    db.execute(f"DROP SCHEMA {schema} CASCADE")

            cleanup.callback(drop_schema)
            store_env = {
                "PERSISTENCE_MODULE": "store.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1",
                "POSTGRES_PORT": "5432", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema,
            }
            env = {**base_env, **store_env, "AGORA_DATA_DIR": str(folder / "postgres"), "AGORA_REDIS_PREFIX": prefix}
            rates["postgres"] = bench_service("postgres", env, store_env, args, script, table, folder)
    for backend in ("sqlite", "postgres"):
        if "bare" in rates and backend in rates:
            table.add("POST/s against the bare endpoint's", backend, f"{rates[backend] / rates['bare']:.2f}x", RATIO_TARGET, rates[backend] / rates["bare"], ratio=True)
    print()
    table.print()
    print(f"\n{time.monotonic() - started:.0f} s in all; {os.cpu_count()} cores; wrk -t1 -c{args.connections}; durations {args.duration:g} s")


if __name__ == "__main__":
    main()

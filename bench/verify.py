"""The verifiable log's costs: chaining (the checkpointer, per event), verifying (events a second), and
group-committed submissions with the checkpointer running beside them against without.

Bulk-generates a store of responses (1,000 per transaction, as group commit writes them), on SQLite
(default) or PostgreSQL (`--postgres`, a fresh schema in the `test` database), and prints figures.
Usage: python bench/verify.py [--events 200000] [--postgres]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from domain.consultations.consultation import read_definition
from domain.consultations.service import Submission
from runtime import System
from runtime.settings import Settings
from audit.verify import verify_store

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "consultations" / "code-of-conduct-2026.toml"
SLUG = "code-of-conduct-2026"
ANSWERS = {"familiarity": "read", "works_well": "The section on AI use is clear.", "join_session": True}
POSTGRES = "dbname=test host=127.0.0.1 port=5432 user=postgres"


def store(folder: Path, postgres: bool) -> dict[str, str]:
    if not postgres:
        return {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(folder / "agora.sqlite")}
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema,
    }


def submissions(system: System, events: int) -> float:
    """Seconds to record `events` responses, 1,000 a transaction."""
    started = time.perf_counter()
    done = 0
    while done < events:
        batch = min(1000, events - done)
        system.consultations.submit_batch([Submission(SLUG, ANSWERS)] * batch)
        done += batch
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=200_000, help="responses in the generated store (default 200000)")
    p.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="agora-bench-verify-"))
    env = store(folder, args.postgres)
    settings = Settings(data_dir=str(folder), secret="benchmarks sign nothing but checkpoints", checkpoint_events=10_000)
    try:
        with System(settings, env) as system:
            system.consultations.load(read_definition(SEED.read_bytes()))
            checkpointer = system.checkpointer()

            half = args.events // 2
            plain = submissions(system, half)
            started = time.perf_counter()
            while checkpointer.step():
                pass
            seconds = time.perf_counter() - started
            chained = system.ledger.head()[0]
            print(f"checkpointer, chaining {chained:,} events with nothing else running: "
                  f"{seconds / chained * 1e6:.1f} µs per event ({chained / seconds:,.0f}/s)")
            stop = threading.Event()
            runner = threading.Thread(target=checkpointer.run, args=(stop,))
            runner.start()
            beside = submissions(system, half)
            while system.ledger.head()[1] < system.app.head():
                time.sleep(0.01)
            stop.set()
            runner.join()
            checkpointer.checkpoint(datetime.now(UTC))
            print(f"submissions, group-committed in process: {half / plain:,.0f}/s alone, {half / beside:,.0f}/s with the "
                  f"checkpointer chaining beside them in the same process ({(plain / beside - 1) * 100:+.1f}%)")

            for keys in (None, system.keys_held):  # as `agora audit verify` does, the keys checked too; and without
                started = time.perf_counter()
                report = verify_store(system.app, system.ledger, [checkpointer.signer.verifier], keys=keys)
                seconds = time.perf_counter() - started
                assert report.ok, report
                checked = f"and the {report.sealed:,} keys of its sealed values" if keys else "without the keys"
                print(f"verify (live store), {report.events:,} events, {report.checkpoints} checkpoints, {checked}: {seconds:.2f}s, {report.events / seconds:,.0f} events/s")
    finally:
        shutil.rmtree(folder)
        if args.postgres:
            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {env['POSTGRES_SCHEMA']} CASCADE")


if __name__ == "__main__":
    main()

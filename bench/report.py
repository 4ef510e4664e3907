"""Benchmark: building a report over a large consultation, from the log alone.

Run from the project folder:  .venv/bin/python bench/report.py [--responses N | --million] [--store sqlite|postgres]

It fills a fresh event store in bulk (not through HTTP: the domain's aggregates, saved with
`app.save` in large batches, free text sealed under keys of its own as on submission): N responses
to the seed consultation, each reviewed (claimed, tagged, completed; one in twenty excluded with a
flag), a few quotes marked, redacted and selected, sections written. Then, in a fresh process so
that its peak memory is its own, it builds the report at the head of the log (the fold, the content,
its canonical bytes and digest) and prints the time, the events folded per second (those it reads:
the kinds a report needs, about two thirds of the log here; claims and the like are skipped by the
store's topic index) and the peak resident memory. Targets: at least 50,000 events/s folded; under 1 GiB for 1,000,000 responses.

PostgreSQL needs a server at 127.0.0.1:5432 with database `test` (trust auth); the schema it
creates is dropped at the end, as is the temporary folder. It is vacuumed before the build, as
autovacuum would have done: the first read of rows written in bulk a moment before also sets their
hint bits, which halves that one read's speed.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain.consultations.consultation import read_definition  # noqa: E402
from domain.consultations.response import Response  # noqa: E402
from domain.reports.report import QuoteRef, Report  # noqa: E402
from domain.review.case import Flag, Outcome, ReviewCase  # noqa: E402
from reports.content import Fold, canonical, content_of, digest  # noqa: E402
from runtime import System  # noqa: E402
from runtime.settings import Settings  # noqa: E402

SEED = ROOT / "consultations" / "code-of-conduct-2026.toml"
POSTGRES = "dbname=test host=127.0.0.1 port=5432 user=postgres"
EVENTS_PER_SECOND_TARGET = 50_000
PEAK_TARGET = 1 << 30  # bytes, for 1,000,000 responses
BATCH = 2000  # responses (and their review cases) per transaction
QUOTES = 50
FAMILIARITY = ["not_aware", "aware_not_read", "read", "know_well"]
THEMES = ["ai_use", "consent", "reporting_enforcement", "cultural_context", "scope_of_spaces", "clarity_language"]
TEXT = "The draft is clearer than the old one, and the part on AI use is welcome; reporting should be simpler. "


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate(system: System, responses: int) -> None:
    """N reviewed responses to the seed consultation, saved in batches, as the domain records them."""
    rng = random.Random(2026)
    consultation = system.consultations.get(read_definition(SEED.read_bytes()).slug)
    reviewer, editor = uuid.uuid4(), uuid.uuid4()
    now, lease = datetime.now(UTC), timedelta(minutes=30)
    report = Report(consultation_id=consultation.id, by=editor)
    started = time.perf_counter()
    for first in range(0, responses, BATCH):
        size = min(BATCH, responses - first)
        texts = iter(system.texts.seal([("works_well", f"{TEXT}#{first + i}") for i in range(size)]))
        batch: list = []
        for i in range(first, first + size):
            answers = {"familiarity": rng.choice(FAMILIARITY), "join_session": rng.random() < 0.3}
            response = Response(consultation.id, consultation.revision, answers, {"works_well": next(texts)}, uuid.uuid4().hex)
            case = ReviewCase(response.id)
            case.claim(reviewer, now, lease)
            for theme in rng.sample(THEMES, rng.randint(1, 2)):
                case.tag(reviewer, theme, now)
            if i < QUOTES:
                case.mark_quote(reviewer, "works_well", 0, 40, TEXT, now)
                if i % 5 == 0:
                    case.redact(reviewer, "works_well", 4, 9, "a test", TEXT, lambda t: system.texts.seal([("works_well", t)])[0], now)
                report.select_quote(editor, QuoteRef(response.id, "works_well", 0, 40))
            if rng.random() < 0.05:
                case.flag(reviewer, rng.choice([Flag.SPAM, Flag.ABUSIVE, Flag.OFF_TOPIC]), "bench", None, now)
                case.complete(reviewer, Outcome.EXCLUDED, "bench", now)
            else:
                case.complete(reviewer, Outcome.REVIEWED, "", now)
            batch += [response, case]
        system.app.save(*batch)
        done = first + size
        if done % (BATCH * 25) == 0 or done == responses:
            log(f"  {done:,} responses, {system.app.head():,} events, {time.perf_counter() - started:.0f} s")
    for key, title in [("we-asked", "We asked"), ("you-said", "You said"), ("we-did", "We did")]:
        report.write_section(editor, key, title, f"{title}: the bench's narrative.")
    system.app.save(report)


def build(store_env: dict[str, str], data_dir: str) -> dict[str, float]:
    """Build the report at the head of the log; time it, and this process's peak memory."""
    with System(Settings(data_dir=data_dir, secret="b" * 48), store_env) as system:
        consultation = system.consultations.get(read_definition(SEED.read_bytes()).slug)
        head = system.app.head()
        started = time.perf_counter()
        fold = Fold(consultation.id).run(system.app, head)
        folded = time.perf_counter()
        content = content_of(fold, system.app, system.texts, 1, False)
        body, sha = canonical(content), digest(content)
        finished = time.perf_counter()
    return {
        "head": head,
        "folded": fold.folded,
        "fold_seconds": folded - started,
        "seconds": finished - started,
        "events_per_second": fold.folded / (folded - started),
        "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "bytes": len(body),
        "quotes": len(content.quotes),
        "received": content.responses.received,
        "digest": sha,
    }


def run(store: str, responses: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="agora-report-bench-") as folder:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        if store == "sqlite":
            env = {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": f"{folder}/agora.sqlite"}
        else:
            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            env = {
                "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1",
                "POSTGRES_PORT": "5432", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema,
            }
        try:
            log(f"{store}: generating {responses:,} reviewed responses")
            with System(Settings(data_dir=folder, secret="b" * 48), env) as system:
                system.consultations.load(read_definition(SEED.read_bytes()))
                generate(system, responses)
                table = system.app.recorder.events_table_name  # type: ignore[attr-defined]
            if store == "postgres":  # as autovacuum leaves a store that was not all written a moment ago
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f"VACUUM ANALYZE {schema}.{table}")
            log(f"{store}: building the report in a fresh process")
            child = subprocess.run(
                [sys.executable, __file__, "--build", json.dumps(env), folder], check=True, capture_output=True, text=True
            )
            return json.loads(child.stdout)
        finally:
            if store == "postgres":
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 responses (several minutes, a few GB of disk)")
    parser.add_argument("--store", action="append", choices=["sqlite", "postgres"], help="default: sqlite")
    parser.add_argument("--build", nargs=2, metavar=("STORE_ENV", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        print(json.dumps(build(json.loads(args.build[0]), args.build[1])))
        return
    responses = 1_000_000 if args.million else args.responses
    failed = False
    for store in args.store or ["sqlite"]:
        r = run(store, responses)
        fast = r["events_per_second"] >= EVENTS_PER_SECOND_TARGET
        small = responses < 1_000_000 or r["peak_bytes"] < PEAK_TARGET
        failed |= not (fast and small)
        print(
            f"{store}: {r['received']:,} responses, {r['head']:,} events in the log, of which the fold read the "
            f"{r['folded']:,} of its kinds in {r['fold_seconds']:.1f} s = {r['events_per_second']:,.0f} events/s read "
            f"({'ok' if fast else 'BELOW'} the {EVENTS_PER_SECOND_TARGET:,} target), {r['head'] / r['fold_seconds']:,.0f} "
            f"events/s of log covered; whole build {r['seconds']:.1f} s; "
            f"peak memory {r['peak_bytes'] / 2**20:,.0f} MiB"
            f"{'' if responses < 1_000_000 else ' (ok: under 1 GiB)' if small else ' (OVER the 1 GiB target)'}; "
            f"{r['bytes']:,} bytes, {r['quotes']} quotes, digest {r['digest'][:12]}"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""A longer chaos run than the suite's: keyed submissions while `agora serve`'s processes are killed.

Prints acknowledged / found / lost / duplicated per store. The run itself is the end-to-end
test's (tests/e2e/test_chaos.py), only longer.

    .venv/bin/python bench/chaos.py [--seconds 120] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import POSTGRES  # noqa: E402
from tests.e2e.test_chaos import chaos  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--only", choices=["sqlite", "postgres"])
    args = p.parse_args()
    for store in [args.only] if args.only else ["sqlite", "postgres"]:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": f"{tmp}/agora.sqlite"}
            schema = f"chaos_{uuid.uuid4().hex[:12]}"
            if store == "postgres":
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
                env = {"PERSISTENCE_MODULE": "store.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1",
                       "POSTGRES_PORT": "5432", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema}
            try:
                o = chaos(Path(tmp) / "var", env, args.seconds)
            finally:
                if store == "postgres":
                    with psycopg.connect(POSTGRES, autocommit=True) as conn:
                        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        kills = ", ".join(f"{n} {k}" for k, n in sorted(o.kills.items()))
        print(f"{store:<9} {args.seconds:.0f} s: acknowledged {o.acknowledged}, found {o.found}, lost {o.lost}, "
              f"duplicated {o.duplicated}, unexpected {o.unexpected}, retries {o.retries}; kills: {kills}; "
              f"views {'DIFFER from' if o.views_differ else 'equal'} a fresh fold" + (f" in {', '.join(o.views_differ[:5])}" if o.views_differ else ""))


if __name__ == "__main__":
    main()

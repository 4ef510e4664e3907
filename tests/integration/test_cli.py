"""The operator's `agora` command, against the real store and Redis."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis

from workers import views
from workers.stops import Stops
from cli.main import main
from tests.conftest import POSTGRES
from tests.integration.test_projections import Buggy
from runtime import System
from runtime.settings import Settings
from domain.consultations.consultation import consultation_id, read_definition
from projections.form import decode_form
from projections.live import VIEWS, FormView, StatsView
from projections.state import POSITION
from domain.staff.member import Role
from tests.conftest import REDIS_URL, SEED, SLUG


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, store_env: dict[str, str], redis_prefix: str) -> dict[str, str]:
    """The environment an operator's shell would have: the store's variables, Redis and its prefix."""
    for name, value in {**store_env, "REDIS_URL": REDIS_URL, "AGORA_REDIS_PREFIX": redis_prefix}.items():
        monkeypatch.setenv(name, value)
    System(Settings.from_env(), store_env).close()  # the deployment's store, as `agora serve` made it
    return store_env


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    main(list(args))
    return capsys.readouterr().out


def status(capsys: pytest.CaptureFixture[str], well: bool = False) -> str:
    """`agora status`'s output, checking its exit status: 0 only if all is `well`."""
    if well:
        return run(capsys, "status")
    with pytest.raises(SystemExit) as exit_:
        main(["status"])
    assert exit_.value.code == 1
    return capsys.readouterr().out


def test_loading_a_file_twice_creates_the_consultation_once(operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "consultation", "load", str(SEED)).startswith("created")
    assert run(capsys, "consultation", "load", str(SEED)).startswith("exists")
    with System(Settings.from_env(), operator_env) as system:
        assert system.app.head() == 2  # the consultation and its coding frame


def test_a_broken_file_is_refused_with_its_reason(operator_env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('slug = "x"\ntitle = "t"\nintroduction = "i"\nquestions = []\n')
    with pytest.raises(SystemExit, match="at least one question"):
        main(["consultation", "load", str(broken)])
    with pytest.raises(SystemExit, match=f"^agora: {tmp_path / 'nowhere.toml'}: No such file or directory$"):
        main(["consultation", "load", str(tmp_path / "nowhere.toml")])
    with System(Settings.from_env(), operator_env) as system:
        assert system.app.head() == 0


def test_status_piped_into_a_reader_that_stops_early_ends_without_a_traceback(operator_env: dict[str, str]) -> None:
    """`agora status | head -1`: the reader closes the pipe after one line."""
    done = subprocess.run(
        f"{sys.executable} -c 'from cli.main import main; main()' status | head -1", shell=True, capture_output=True, text=True, timeout=120,
    )
    assert done.stdout.startswith("log head: ") and "Traceback" not in done.stderr, done.stderr


def test_reopening_a_consultation_whose_final_report_is_published_says_the_report_will_need_a_correction(
    operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "consultation", "load", str(SEED))
    run(capsys, "consultation", "close", SLUG)
    with System(Settings.from_env(), operator_env) as system:
        admin = system.staff.enrol("admin@example.org", "Admin", "a long enough password", [Role.ADMIN, Role.EDITOR], by=None)
        system.reports.publish(SLUG, admin, final=True)
    main(["consultation", "open", SLUG])
    said = capsys.readouterr()
    assert "recorded at position" in said.out and "the final report (version 1) is published" in said.err
    # Neither takes responses, nor moving the closing time of a closed consultation, or to a time past (a tester's).
    for action in (["close", SLUG], ["draft-url", SLUG, "https://example.org/draft"], ["closes", SLUG, "2099-01-01T00:00:00Z"]):
        main(["consultation", *action])
        assert "final report" not in capsys.readouterr().err
    main(["consultation", "open", SLUG])
    capsys.readouterr()
    main(["consultation", "closes", SLUG, "2020-01-01T00:00:00Z"])
    assert "final report" not in capsys.readouterr().err


def test_operators_open_close_and_move_the_closing_time_as_events(
    operator_env: dict[str, str], capsys: pytest.CaptureFixture[str], sync_redis: redis.Redis, redis_prefix: str
) -> None:
    run(capsys, "consultation", "load", str(SEED))
    assert "position 3" in run(capsys, "consultation", "close", SLUG)
    assert run(capsys, "consultation", "close", SLUG).strip() == "no change"
    assert "position 4" in run(capsys, "consultation", "open", SLUG)
    assert "position 5" in run(capsys, "consultation", "closes", SLUG, "2027-01-31T23:59:00Z")
    assert "position 6" in run(capsys, "consultation", "draft-url", SLUG, "https://example.org/draft")
    with pytest.raises(SystemExit, match="no consultation"):
        main(["consultation", "close", "nowhere"])
    with pytest.raises(SystemExit, match="UTC offset"):
        main(["consultation", "closes", SLUG, "2027-01-31T23:59:00"])
    with System(Settings.from_env(), operator_env) as system:
        assert system.app.head() == 6
        views.rebuild(system.app, sync_redis, redis_prefix, "form")
    view = FormView(sync_redis, redis_prefix)
    form = decode_form(sync_redis.hgetall(view.keys.key(view.generation, f"form:{consultation_id(SLUG)}")))
    assert form is not None and form.is_open and form.draft_url == "https://example.org/draft"
    assert form.closes_at is not None and form.closes_at.isoformat() == "2027-01-31T23:59:00+00:00"


def test_a_draft_link_is_an_absolute_http_url_from_the_command_and_from_files(
    operator_env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "consultation", "load", str(SEED))
    with pytest.raises(SystemExit, match="^agora: draft_url: not an absolute http"):
        main(["consultation", "draft-url", SLUG, "javascript:alert(1)"])
    bad = tmp_path / "bad.toml"
    bad.write_text(SEED.read_text().replace('slug = "code-of-conduct-2026"', 'slug = "other"').replace('draft_url = ""', 'draft_url = "javascript:alert(1)"'))
    with pytest.raises(SystemExit, match="^agora: draft_url: not an absolute http"):
        main(["consultation", "load", str(bad)])
    with System(Settings.from_env(), operator_env) as system:
        assert system.app.head() == 2 and system.consultations.slugs() == [SLUG]


def test_status_shows_each_view_against_the_head_and_rebuild_catches_them_up(
    operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "consultation", "load", str(SEED))
    assert status(capsys).splitlines() == [
        "log head: 2",
        "view form     at          0  behind by 2  NOT FOLLOWED (no worker holds its lock)",
        "view stats    at          0  behind by 2  NOT FOLLOWED (no worker holds its lock)",
        "view queue    at          0  behind by 2  NOT FOLLOWED (no worker holds its lock)",
        "view report   at          0  behind by 2  NOT FOLLOWED (no worker holds its lock)",
        "ledger: 0 events chained (to position 0), no checkpoint yet",
    ]
    out = run(capsys, "rebuild")
    assert all(f"rebuilt {view}: up to position 2 in" in out for view in ("form", "stats", "queue", "report"))
    assert "behind by 0" in status(capsys)
    assert "rebuilt stats" in run(capsys, "rebuild", "stats")


def test_a_rebuild_of_every_view_rebuilds_the_others_when_one_fold_fails(
    operator_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's: `agora rebuild` stopped at the first view whose fold failed, leaving the views after it as they were."""
    run(capsys, "consultation", "load", str(SEED))
    monkeypatch.setitem(views.VIEWS, "stats", (type("Buggy", (Buggy,), {"poison": 1}), StatsView))
    with pytest.raises(SystemExit, match="not rebuilt: stats"):
        main(["rebuild"])
    out, err = capsys.readouterr()
    assert "cannot rebuild stats: its fold fails on event 1" in err
    assert all(f"rebuilt {view}: up to position 2 in" in out for view in ("form", "queue", "report"))


def test_status_exits_0_only_when_every_view_is_followed_and_the_store_verifies(
    operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer's: it exited 0 whatever it said, so nothing could watch it."""
    run(capsys, "consultation", "load", str(SEED))
    with System(Settings.from_env(), operator_env) as system:
        running = system.workers(mail=False).start()  # the followers hold their views' locks; the checkpointer signs
        try:
            deadline = time.monotonic() + 30
            while not ((latest := system.ledger.latest()) and latest.size == system.app.head() and all(views.followed(system.app).values())):
                assert time.monotonic() < deadline, "the workers did not take over"
                time.sleep(0.1)
            out = status(capsys, well=True)
        finally:
            running.close()
    assert "verifies against the keys it publishes" in out and "NOT FOLLOWED" not in out


def test_status_says_when_no_checkpoint_is_signed_and_when_a_view_is_ahead_of_the_log(
    operator_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sync_redis: redis.Redis, redis_prefix: str,
) -> None:
    """A tester's checkpointer had stalled for good while status said the store verifies; a view ahead read `behind by -1`."""
    run(capsys, "consultation", "load", str(SEED))
    run(capsys, "rebuild")
    monkeypatch.setenv("AGORA_CHECKPOINT_SECONDS", "10")
    with System(Settings.from_env(), operator_env) as system:
        system.checkpointer().step(datetime.now(UTC) - timedelta(minutes=5))  # the last checkpoint signed, five minutes ago
        view = VIEWS["stats"][1](sync_redis, redis_prefix)
        sync_redis.hset(view.keys.key(view.generation, POSITION), system.app.name, 9)  # as if the log had lost events
    out = status(capsys)
    assert re.search(r"\n  NO CHECKPOINT for 30\d s \(one is due every 10 s\), 0 events past the last chained", out), out
    assert "view stats    at          9  AHEAD of the log by 7: the log lost events" in out and "behind by -" not in out
    monkeypatch.setenv("AGORA_CHECKPOINT_SECONDS", "600")
    assert "NO CHECKPOINT" not in status(capsys)
    # The rebuild status points to replaces the view past the log (a tester's waited forever to catch up with it).
    rebuilding = threading.Thread(target=main, args=(["rebuild", "stats"],), daemon=True)
    rebuilding.start()
    rebuilding.join(30)
    assert not rebuilding.is_alive(), "the rebuild never switched"
    assert "view stats    at          2  behind by 0" in status(capsys)


def test_work_runs_only_the_workers_named_and_stops_on_sigterm(operator_env: dict[str, str], sync_redis: redis.Redis, redis_prefix: str) -> None:
    with System(Settings.from_env(), operator_env) as system:
        system.consultations.load(read_definition(SEED.read_bytes()))
        worker = subprocess.Popen([sys.executable, "-c", "from cli.main import main; main()", "work", "stats"], stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while views.positions(system.app, sync_redis, redis_prefix)["stats"] < system.app.head():
                assert time.monotonic() < deadline and worker.poll() is None, "the stats follower did not catch up"
                time.sleep(0.05)
            assert views.positions(system.app, sync_redis, redis_prefix)["form"] == 0  # not named: not run
            assert views.followed(system.app) == {"form": False, "stats": True, "queue": False, "report": False}
        finally:
            worker.send_signal(signal.SIGTERM)
            _, errors = worker.communicate(timeout=30)
    assert worker.returncode == 0, errors
    assert "INFO store.locks: view-stats: holds the lock" in errors  # operators see which process folds what


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["work", "stats", "nope"], "no such worker: nope; the workers are form, stats, queue, report, mailer, checkpointer, clusterer"),
        (["serve", "--api-only"], "--api-only needs REDIS_URL"),
        (["work", "clusterer"], "the clusterer is off"),
        # Not the Redis that answers on the default address (a tester's rebuild, after stopping the server, wrote there).
        (["rebuild"], "no Redis to use: REDIS_URL is not set, and the embedded one"),
        (["status"], "no Redis to use"),
        (["work", "stats"], "no Redis to use"),
        (["consultation", "closes", "code-of-conduct-2026", "tomorrow"], "not a time: 'tomorrow'; give an ISO 8601 time with its offset"),
    ],
)
def test_workers_and_serve_refuse_what_cannot_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], refusal: str) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("AGORA_CLUSTER_RESPONSES", "false")
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path))
    System(Settings.from_env()).close()  # a deployment's store, with nothing else running
    with pytest.raises(SystemExit, match=refusal.replace("-", r"\-")):
        main(args)


@pytest.mark.parametrize(
    "args",
    [["status"], ["audit", "verify"], ["audit", "export", "--out", "out"], ["report", "verify", "x"], ["keys", "reshred"],
     ["consultation", "close", "x"], ["staff", "erase", "00000000-0000-4000-8000-000000000000"], ["signups", "export", "--session", "s"]],
)
def test_a_command_run_outside_the_deployment_makes_no_store_and_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    """A newcomer's `agora status` in another folder made an empty store and a new secret there, then said it was empty."""
    for name in ("REDIS_URL", "PERSISTENCE_MODULE", "SQLITE_DBNAME", "AGORA_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=f"^agora: no event store at var/agora.sqlite: run agora in the deployment's folder"):
        main(args)
    assert list(tmp_path.iterdir()) == []


def test_a_command_without_the_deployments_secret_or_a_store_file_named_refuses_and_makes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A tester's `agora status` on PostgreSQL, in another folder with a mistyped schema, made the schema and a new secret."""
    for name in ("REDIS_URL", "AGORA_DATA_DIR", "AGORA_SECRET", "SQLITE_DBNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    schema = "agora_test_mistyped"
    for name, value in {"PERSISTENCE_MODULE": "store.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1",
                        "POSTGRES_PORT": "5432", "POSTGRES_USER": "postgres", "POSTGRES_SCHEMA": schema}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match="^agora: no secret: AGORA_SECRET is not set and var/secret is not there"):
        main(["status"])
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() == (0,)
    monkeypatch.setenv("PERSISTENCE_MODULE", "store.sqlite")  # and no SQLITE_DBNAME
    with pytest.raises(SystemExit, match="^agora: PERSISTENCE_MODULE names SQLite but SQLITE_DBNAME is not set"):
        main(["status"])
    monkeypatch.delenv("PERSISTENCE_MODULE")
    with pytest.raises(SystemExit, match="x.toml: No such file or directory"):  # checked before a store is made
        main(["consultation", "load", "x.toml"])
    with pytest.raises(SystemExit, match="no Redis to use"):  # a worker makes a deployment, but not without Redis
        main(["work"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_serve_wants_a_positive_number_of_api_processes(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--workers", workers])
    assert "not a positive whole number" in capsys.readouterr().err


def test_status_shows_a_view_stopped_on_a_poison_event_and_skip_decides_it(
    operator_env: dict[str, str], capsys: pytest.CaptureFixture[str], sync_redis: redis.Redis, redis_prefix: str
) -> None:
    run(capsys, "consultation", "load", str(SEED))
    stops = Stops(sync_redis, redis_prefix)
    stops.record("stats", 2, "event 2: ValueError: cannot fold this one", 5)  # as a stopped follower records it
    lines = status(capsys).splitlines()
    assert lines[2:4] == [
        "view stats    at          0  behind by 2  NOT FOLLOWED (no worker holds its lock)",
        "  STOPPED on event 2 after 5 attempts: event 2: ValueError: cannot fold this one; "
        "`agora rebuild stats` after a fix, or `agora skip stats 2`",
    ]
    assert sum("STOPPED" in line for line in lines) == 1
    for args, refusal in ((["skip", "stats", "1"], "stopped on event 2, not 1"), (["skip", "form", "2"], "form is not stopped"),
                          (["skip", "nope", "2"], "no such view: nope")):
        with pytest.raises(SystemExit, match=refusal):
            main(args)
    with pytest.raises(SystemExit):
        main(["skip", "stats", "two"])
    assert stops.get("stats")["skip"] is False  # nothing decided by a refusal
    assert "will do without event 2" in run(capsys, "skip", "stats", "2")
    assert "skipping it, as decided" in status(capsys)
    run(capsys, "rebuild", "stats")  # a rebuild folds every event again, and clears the stop
    assert stops.get("stats") is None and "STOPPED" not in status(capsys)


def test_status_with_redis_not_answering_says_so_in_a_line(operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester's: a hung Redis gave status a traceback."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    with pytest.raises(SystemExit, match=r"^agora: Redis does not answer \(ConnectionError: .*is it running, and is REDIS_URL right\?$"):
        main(["status"])

"""One follower of each view folds per deployment; another stands by and takes over, on both event stores."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time

import msgspec
import psycopg
import pytest
import redis

from store import locks
from projections.live import StatsView
from projections.state import replay
from projections.stats import StatsProjection
from runtime import System
from runtime.settings import Settings
from tests.conftest import SLUG
from tests.integration.test_projections import counts, submit, until
from workers import views
from workers.follower import STANDBY, Follower, Followers, lock, rebuild

TAKE_OVER = STANDBY + 10  # seconds: the standby's next try, and a slow machine's catching up


def stats_followers(system: System, client: redis.Redis, prefix: str) -> Followers:
    return Followers([Follower(system.app, StatsProjection(StatsView(client, prefix)))]).start()


def caught_up(system: System, client: redis.Redis, prefix: str) -> bool:
    return views.positions(system.app, client, prefix)["stats"] == system.app.head()


def assert_exactly_once(system: System, client: redis.Redis, prefix: str) -> None:
    """The 50 responses counted once each: the view equals a fold of the log in memory."""
    folded = replay(system.app, StatsProjection).hgetall(f"stats:{system.consultations.get(SLUG).id}")
    assert folded[b"responses"] == b"50" and counts(client, prefix, system) == folded


def test_a_second_follower_of_a_view_stands_by_and_takes_over_when_the_first_stops(
    system: System, sync_redis: redis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="store")
    submit(system, 20)
    first = stats_followers(system, sync_redis, redis_prefix)
    second = None
    try:
        until(lambda: caught_up(system, sync_redis, redis_prefix), "the first follower did not catch up")
        assert StatsView(sync_redis, redis_prefix).fold_version() == StatsProjection.version  # a new view is marked
        second = stats_followers(system, sync_redis, redis_prefix)
        until(lambda: "another process holds the view-stats lock; standing by" in caplog.text, "the second did not stand by")
        submit(system, 10)
        until(lambda: caught_up(system, sync_redis, redis_prefix), "the first follower did not fold on")
        assert first.followers[0].bell is not None and second.followers[0].bell is None  # one folds, one stands by
        first.stop()
        submit(system, 20)
        until(lambda: caught_up(system, sync_redis, redis_prefix), "the standby did not take over", TAKE_OVER)
        assert "view-stats: took over the lock, from a process that stopped" in caplog.text
        assert second.followers[0].bell is not None
    finally:
        first.stop()
        if second:
            second.stop()
    assert_exactly_once(system, sync_redis, redis_prefix)


def test_a_view_written_by_another_version_of_its_fold_is_rebuilt_when_its_follower_starts(
    system: System, sync_redis: redis.Redis, redis_prefix: str
) -> None:
    submit(system, 20)
    view = StatsView(sync_redis, redis_prefix)
    Follower(system.app, StatsProjection(view)).catch_up()
    view.mark_fold(StatsProjection.version - 1)  # as a release before the fold changed left it
    sync_redis.hset(view.keys.key(view.generation, f"stats:{system.consultations.get(SLUG).id}"), "responses", 999)
    workers = stats_followers(system, sync_redis, redis_prefix)
    try:
        until(lambda: StatsView(sync_redis, redis_prefix).current_generation() != view.generation, "the view was not rebuilt")
        submit(system, 30)
        until(lambda: caught_up(system, sync_redis, redis_prefix), "the follower did not fold on from the rebuilt view")
    finally:
        workers.stop()
    assert_exactly_once(system, sync_redis, redis_prefix)  # 50, not 999 and more: the rebuilt generation is what readers see
    assert StatsView(sync_redis, redis_prefix).fold_version() == StatsProjection.version


def test_a_rebuild_asked_to_stop_gives_up_without_switching(system: System, sync_redis: redis.Redis, redis_prefix: str) -> None:
    """So a worker that is stopped while it rebuilds an upgraded view stops at once; it rebuilds on its next start."""
    submit(system, 20)
    stop = threading.Event()
    stop.set()
    assert rebuild(system.app, StatsProjection, StatsView.new_generation(sync_redis, redis_prefix), stop) is None
    assert StatsView(sync_redis, redis_prefix).current_generation() == 0  # readers stay where they were
    rebuilt = rebuild(system.app, StatsProjection, StatsView.new_generation(sync_redis, redis_prefix), threading.Event())
    assert rebuilt is not None and rebuilt.position == system.app.head()


WORKER = """
import json, sys, time
import msgspec
from runtime import System
from runtime.settings import Settings
settings, store_env = msgspec.json.decode(sys.argv[1], type=Settings), json.loads(sys.argv[2])
workers = System(settings, store_env).workers(mail=False)
workers.runners = [r for r in workers.runners if r.name == "stats"]
workers.start()
while workers.runners[0].bell is None:
    time.sleep(0.01)
print("folding", flush=True)
time.sleep(600)
"""


def test_a_standby_takes_over_a_view_when_the_worker_holding_it_is_killed(
    system: System, sync_redis: redis.Redis, redis_prefix: str, settings: Settings, store_env: dict[str, str]
) -> None:
    """Two `agora work` processes, one SIGKILLed: its lock goes with it (the flock, the PostgreSQL session)."""
    submit(system, 20)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, msgspec.json.encode(settings).decode(), json.dumps(store_env)], stdout=subprocess.PIPE, text=True
    )
    standby = None
    try:
        assert worker.stdout.readline() == "folding\n"
        standby = stats_followers(system, sync_redis, redis_prefix)
        submit(system, 10)
        until(lambda: caught_up(system, sync_redis, redis_prefix), "the worker did not fold")
        assert standby.followers[0].bell is None and views.followed(system.app)["stats"]
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        submit(system, 20)
        until(lambda: caught_up(system, sync_redis, redis_prefix), "the standby did not take over", TAKE_OVER)
        assert standby.followers[0].bell is not None
    finally:
        worker.kill()
        worker.communicate(timeout=30)
        if standby:
            standby.stop()
    assert_exactly_once(system, sync_redis, redis_prefix)


@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)  # SQLite's locks are files of processes on one host
def test_a_standby_takes_over_from_a_holder_that_stopped_answering_and_status_says_so(
    system: System, sync_redis: redis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator's: a worker stopped (SIGSTOP) kept its PostgreSQL sessions, and with them every lock, for good:
    no standby took over, and `agora status` said the views were followed."""
    monkeypatch.setattr(locks, "STALLED", 1.0)
    datastore = system.app.recorder.datastore  # type: ignore[attr-defined]
    name = f"agora:{datastore.schema}:{lock('stats')}"
    with psycopg.connect(**datastore.pool.kwargs, autocommit=True) as hung:  # a holder that answers nothing more
        assert hung.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS held", (name,)).fetchone()["held"]
        submit(system, 5)
        time.sleep(1.5)
        assert locks.unanswered(system.app.recorder, lock("stats")) > 1.0
        assert views.stalled(system.app)["stats"] > 1.0
        with caplog.at_level(logging.WARNING):
            running = stats_followers(system, sync_redis, redis_prefix)
            try:
                until(lambda: caught_up(system, sync_redis, redis_prefix), "the standby did not take over", TAKE_OVER)
            finally:
                running.stop()
        assert any("has not answered for" in r.getMessage() and "ending its session to take over" in r.getMessage() for r in caplog.records)
        with pytest.raises(psycopg.OperationalError):
            hung.execute("SELECT 1")

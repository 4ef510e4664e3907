"""While Redis is down or hung, respondents still submit (the event store decides), and staff sign-in is refused."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from uuid import UUID

import msgspec
import pytest
import redis
from litestar.testing import AsyncTestClient
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from api.app import create_app
from api.limits import CountingStore
from cli.embedded import redis_url, start_redis
from domain.consultations.response import Response
from runtime import System, redis_client
from runtime.settings import Settings
from tests.conftest import PASSWORD, SLUG

KEY = "a-retried-submission-0001"
BODY = {"answers": {"familiarity": "read", "works_well": "the examples"}}


async def test_respondents_submit_while_redis_is_hung_or_down_and_staff_cannot_sign_in(
    system: System, store_env: dict[str, str], settings: Settings, staff: dict[str, UUID], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """A newcomer's: with Redis stopped, every submission waited 5 s for a 503 (the rate limit could not count it),
    and each logged 80 lines of traceback."""
    limited = msgspec.structs.replace(settings, redis_url=redis_url(tmp_path), rate_limit_per_minute=30, sign_in_rate_limit_per_minute=10)
    redis = start_redis(tmp_path)  # one of this test's own, to stop and kill
    try:
        async with AsyncTestClient(create_app(limited, store_env)) as client:
            os.kill(redis.pid, signal.SIGSTOP)  # hung: it takes connections and answers nothing
            first = await client.post(f"/consultations/{SLUG}/responses", json=BODY, headers={"Idempotency-Key": KEY})
            assert first.status_code == 201, first.text
            redis.kill()  # down
            redis.wait()
            with caplog.at_level(logging.INFO):
                again = await client.post(f"/consultations/{SLUG}/responses", json=BODY, headers={"Idempotency-Key": KEY})
                other = await client.post(f"/consultations/{SLUG}/responses", json=BODY)
                signing_in = await client.post("/staff/token", json={"email": "reviewer@example.org", "password": PASSWORD})
            assert (again.status_code, again.json()["id"]) == (201, first.json()["id"])  # the same response, recorded once
            assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
            assert (signing_in.status_code, signing_in.json()["type"]) == (503, "/problems/views-unavailable")
            assert not [r for r in caplog.records if r.exc_info], "an outage is logged in a line, not a traceback"
    finally:
        if redis.poll() is None:
            os.kill(redis.pid, signal.SIGCONT)
            redis.kill()
            redis.wait()
    assert len(list(system.app.select_events(Response.Submitted))) == 2


async def test_only_redis_failing_opens_the_limits_not_a_process_too_busy_to_count(tmp_path: Path) -> None:
    """An attacker's: a flood of GETs took every connection of the pool the limits shared, the limits read
    that as Redis down and let 493 of 1,000 POSTs through. CI's: a burst of requests kept a process's loop from
    reading Redis's answers for over a second, which read as Redis hung. Busy is refused; only Redis failing lets requests by."""
    redis_ = start_redis(tmp_path)
    pool = BlockingConnectionPool.from_url(redis_url(tmp_path), max_connections=1, timeout=0.2, socket_timeout=0.5)
    client = Redis.from_pool(pool)
    store = CountingStore(client, namespace="outage")
    watching = asyncio.create_task(store.watch())

    async def opened() -> bool:
        """Whether a request that Redis fails to count opens the limits."""
        sent = time.monotonic()
        with pytest.raises(RedisError) as failed:
            await store.take("a-client", 10, 60)
        return store.uncount(failed.value, sent)

    try:
        await asyncio.sleep(0.3)  # the watch beats
        held = await pool.get_connection()  # the only connection, taken
        assert not await opened()
        await pool.release(held)
        os.kill(redis_.pid, signal.SIGSTOP)  # hung
        asyncio.get_running_loop().call_later(0.1, time.sleep, 1.0)  # and the loop stalled while the reply is awaited
        assert not await opened()
        assert not store.uncounting
        await asyncio.sleep(0.3)
        assert await opened()  # hung, and the loop on time
        assert store.uncounting
        os.kill(redis_.pid, signal.SIGCONT)
        redis_.kill()
        redis_.wait()
        assert await opened()  # down
    finally:
        watching.cancel()
        await client.aclose()
        if redis_.poll() is None:
            os.kill(redis_.pid, signal.SIGCONT)
            redis_.kill()
            redis_.wait()


async def test_submissions_are_refused_not_let_through_while_no_connection_to_count_them_is_free(
    system: System, store_env: dict[str, str], settings: Settings,
) -> None:
    limited = msgspec.structs.replace(settings, rate_limit_per_minute=30)
    app = create_app(limited, store_env)
    async with AsyncTestClient(app) as client:
        pool = app.stores.get("rate_limit")._redis.connection_pool  # the limits' own: a flood of reads cannot take it
        assert not pool._available_connections  # none made yet: with none allowed, every one is taken, as in a flood of POSTs
        size, pool.max_connections, pool.timeout = pool.max_connections, 0, 0.2
        r = await client.post(f"/consultations/{SLUG}/responses", json=BODY)
        assert (r.status_code, r.json()["type"]) == (503, "/problems/views-unavailable")
        pool.max_connections = size
        assert (await client.post(f"/consultations/{SLUG}/responses", json=BODY)).status_code == 201
    assert len(list(system.app.select_events(Response.Submitted))) == 1


async def test_connections_a_restarted_redis_closed_are_made_again_not_a_failed_request(tmp_path: Path, settings: Settings) -> None:
    """An operator's: for minutes after Redis came back, each pooled connection it had closed failed a request (a 503) as it came round."""
    redis_ = start_redis(tmp_path)
    client = redis_client(msgspec.structs.replace(settings, redis_url=redis_url(tmp_path)))
    try:
        assert await client.ping()
        with redis.Redis.from_url(redis_url(tmp_path)) as other:
            other.client_kill_filter(_type="normal", skipme=True)  # as a restart closes them
        assert await client.ping()
    finally:
        await client.aclose()
        redis_.kill()
        redis_.wait()

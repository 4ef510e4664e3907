"""While Redis is down or hung, respondents still submit (the event store decides), and staff sign-in is refused."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from cli.embedded import redis_url, start_redis
from domain.consultations.response import Response
from runtime import System
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

"""Rate limits hold across API processes: `agora serve` runs one per core, each with its own Redis
connections, and a client's requests spread over them must still count in one bucket."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import ExitStack

import httpx
import msgspec
from litestar.testing import AsyncTestClient

from api.app import create_app
from domain.staff.member import Role
from runtime import System
from runtime.settings import Settings
from tests.conftest import PASSWORD, served

LIMIT = 10
WRONG = {"email": "root@example.org", "password": "not the password at all"}


async def test_concurrent_sign_ins_across_two_apps_get_no_more_password_checks_than_the_limit(
    system: System, store_env: dict[str, str], settings: Settings
) -> None:
    system.staff.enrol("root@example.org", "Root", PASSWORD, [Role.ADMIN], by=None)
    strict = msgspec.structs.replace(settings, sign_in_rate_limit_per_minute=LIMIT, inline_followers=False)
    # Two instances of the API, as two processes would be: each its own event loop, Redis client and
    # connection pool, with the requests in flight together (litestar's test client runs them one by one).
    with ExitStack() as stack:
        urls = [stack.enter_context(served(create_app(strict, store_env))) for _ in range(2)]
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
            answers = await asyncio.gather(*(http.post(f"{url}/staff/token", json=WRONG) for _ in range(100) for url in urls))
    assert Counter(r.status_code for r in answers) == {401: LIMIT, 429: 200 - LIMIT}
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "/problems/rate-limited"
    assert 0 < int(refused.headers["retry-after"]) <= 60 and refused.headers["retry-after"] == refused.headers["ratelimit-reset"]
    assert refused.headers["ratelimit-remaining"] == "0" and refused.headers["ratelimit-limit"] == str(LIMIT)
    assert refused.headers["ratelimit-policy"] == f"{LIMIT}; w=60"
    checked = sorted(int(r.headers["ratelimit-remaining"]) for r in answers if r.status_code == 401)
    assert checked == list(range(LIMIT))  # each request counted once: 9 left after the first, … 0 after the tenth


async def test_a_bucket_counts_from_its_first_request_and_says_what_is_left(
    system: System, store_env: dict[str, str], settings: Settings
) -> None:
    strict = msgspec.structs.replace(settings, sign_in_rate_limit_per_minute=3, inline_followers=False)
    async with AsyncTestClient(create_app(strict, store_env)) as client:
        answers = [await client.post("/staff/token", json=WRONG) for _ in range(4)]
    assert [r.status_code for r in answers] == [401, 401, 401, 429]
    assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert all(0 < int(r.headers["ratelimit-reset"]) <= 60 for r in answers)
    assert "retry-after" not in answers[0].headers

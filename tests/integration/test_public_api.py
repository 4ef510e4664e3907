"""The public form, submitting and the statistics, through HTTP, on both event stores."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
import sqlite3
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from projections.live import FormView
from runtime import System
from domain.consultations.consultation import Definition
from domain.staff.member import Role
from tests.conftest import ON_SQLITE_ONLY, PASSWORD, POSTGRES, SLUG, raw_storage

FORM = f"/consultations/{SLUG}"
RESPONSES = f"{FORM}/responses"
STATS = f"{FORM}/stats"
GOOD = {"answers": {"familiarity": "read", "works_well": "The section on AI use.", "join_session": True}}


def assert_problem(r: Any, status: int, type_: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["type"] == f"/problems/{type_}" and body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


async def test_form_shows_the_seed_consultation_from_its_view(client: AsyncTestClient) -> None:
    r = await client.get(FORM)
    assert r.status_code == 200
    form = r.json()
    assert form["title"] == "Help Shape Our Global Community Code of Conduct"
    assert form["open"] is True and form["closes_at"] is None and form["draft_url"] == ""
    assert [q["id"] for q in form["questions"]] == [
        "familiarity", "works_well", "missing_or_unclear", "add_remove_rethink", "join_session", "contact", "other_questions",
    ]
    first = form["questions"][0]
    assert first["kind"] == "single_choice" and first["required"] and len(first["options"]) == 4
    assert form["questions"][1]["max_length"] == 5000
    assert [s["starts_at"] for s in form["sessions"]] == ["2026-05-07T13:00:00Z", "2026-05-07T18:00:00Z"]
    assert len(form["faq"]) == 7 and len(form["next_steps"]) == 3


async def test_form_answers_if_none_match_with_304_until_it_changes(client: AsyncTestClient, system: System) -> None:
    first = await client.get(FORM)
    etag = first.headers["etag"]
    again = await client.get(FORM, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    position = system.consultations.close(SLUG)
    changed = await client.get(FORM, params={"after": position}, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["open"] is False and changed.headers["etag"] != etag


async def test_unknown_consultation_is_a_404_problem(client: AsyncTestClient) -> None:
    assert_problem(await client.get("/consultations/no-such-thing"), 404, "consultation-not-found")
    assert_problem(await client.get("/consultations/no-such-thing/stats"), 404, "consultation-not-found")


async def test_a_consultation_the_form_view_lost_but_the_log_holds_is_503_not_404(
    client: AsyncTestClient, system: System, sync_redis: Any, redis_prefix: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator's: with the consultation's form key deleted in Redis (the rest of the view there), the form answered
    404 `consultation-not-found` for good, and nothing said the view was wrong."""
    await client.get(f"/consultations/{SLUG}", params={"after": system.app.head()})
    view = FormView(sync_redis, redis_prefix)
    (key,) = [k for k in sync_redis.scan_iter(match=view.keys.key(view.generation, "*")) if str(system.consultations.get(SLUG).id).encode() in k]
    sync_redis.delete(key)
    with caplog.at_level(logging.ERROR):
        r = await client.get(f"/consultations/{SLUG}")
    assert (r.status_code, r.json()["type"]) == (503, "/problems/view-behind"), r.text
    assert any(f"lacks consultation '{SLUG}', which the log holds" in rec.getMessage() for rec in caplog.records)
    assert_problem(await client.get("/consultations/no-such-thing"), 404, "consultation-not-found")


async def test_views_wiped_answer_503_not_404_until_folded_again(client: AsyncTestClient, sync_redis: Any, redis_prefix: str) -> None:
    """Redis restarted empty: a consultation in the log is not "not found" while its views are folded again."""
    seen = set()
    for _ in range(3):
        if keys := list(sync_redis.scan_iter(match=f"{redis_prefix}:*")):
            sync_redis.delete(*keys)
        for path in (f"/consultations/{SLUG}", f"/consultations/{SLUG}/stats", f"/consultations/{SLUG}/report"):
            r = await client.get(path)
            seen.add(r.status_code)
            assert r.status_code != 404 or r.json()["type"] == "/problems/report-not-published", (path, r.text)
            if r.status_code == 503:
                assert r.json()["type"] == "/problems/view-behind" and r.headers["Retry-After"] == "1"
    assert 503 in seen
    deadline = asyncio.get_running_loop().time() + 10
    while (await client.get(f"/consultations/{SLUG}")).status_code != 200:  # folded again, with no new event
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


async def test_submitting_records_one_response_and_is_counted(client: AsyncTestClient, system: System) -> None:
    r = await client.post(RESPONSES, json=GOOD)
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["position"] == system.app.head()
    response_id = uuid.UUID(receipt["id"])
    response = system.consultations.response(response_id)
    assert system.review.answers(response_id) == GOOD["answers"]
    # Free text is stored only sealed, under a key of its own; choices stay in clear.
    assert list(response.texts) == ["works_well"] and response.answers == {"familiarity": "read", "join_session": True}
    (stored,) = [n for n in system.app.recorder.select_notifications(start=1, limit=100) if n.id == receipt["position"]]
    assert b"AI use" not in stored.state
    # Only the receipt's hash is kept.
    assert response.receipt_hash == hashlib.sha256(receipt["receipt"].encode()).hexdigest()
    stats = await client.get(STATS, params={"after": receipt["position"]})
    assert stats.status_code == 200
    body = stats.json()
    assert body["responses"] == 1 and body["position"] >= receipt["position"]
    assert body["answers"]["familiarity"] == {"not_aware": 0, "aware_not_read": 0, "read": 1, "know_well": 0}
    assert body["answers"]["join_session"] == {"true": 1, "false": 0}


async def test_concurrent_submissions_are_each_recorded_once_and_all_counted(live_url: str) -> None:
    choices = ["not_aware", "aware_not_read", "read", "know_well"]
    async with httpx.AsyncClient(base_url=live_url) as http:
        results = await asyncio.gather(
            *(http.post(RESPONSES, json={"answers": {"familiarity": choices[i % 4]}}) for i in range(80))
        )
        assert [r.status_code for r in results] == [201] * 80
        positions = [r.json()["position"] for r in results]
        assert len(set(positions)) == 80
        body = (await http.get(STATS, params={"after": max(positions)})).json()
    assert body["responses"] == 80 and set(body["answers"]["familiarity"].values()) == {20}


async def test_many_readers_waiting_for_the_same_write_all_get_it(live_url: str, system: System) -> None:
    next_position = system.app.head() + 1
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=live_url, limits=limits, timeout=10) as http:
        waiting = [asyncio.create_task(http.get(STATS, params={"after": next_position})) for _ in range(150)]
        await asyncio.sleep(0.2)  # they are waiting before the write exists
        assert not any(w.done() for w in waiting)
        assert (await http.post(RESPONSES, json=GOOD)).json()["position"] == next_position
        answers = await asyncio.gather(*waiting)
    assert {r.status_code for r in answers} == {200}
    assert {r.json()["responses"] for r in answers} == {1}


BAD_BODIES = [
    pytest.param(b'{"answers": {"familiarity": "read"', "malformed-request", None, id="malformed-json"),
    pytest.param(b'{"answers": {"familiarity": "read"}, "name": "A"}', "malformed-request", "name", id="unknown-top-level-field"),
    pytest.param(b'{"answers": []}', "malformed-request", "answers", id="answers-not-an-object"),
]

BAD_ANSWERS = [
    pytest.param({"familiarity": "read", "colour": "blue"}, "answers.colour", id="unknown-question"),
    pytest.param({"familiarity": True}, "answers.familiarity", id="wrong-kind"),
    pytest.param({"familiarity": "often"}, "answers.familiarity", id="option-not-offered"),
    pytest.param({"familiarity": "read", "works_well": "x" * 5001}, "answers.works_well", id="over-long-text"),
    pytest.param({"works_well": "fine"}, "answers.familiarity", id="missing-required"),
    pytest.param({"familiarity": "read", "contact": {"name": "Ada", "email": "ada@example.org"}}, "answers.contact", id="contact-details"),
]


@pytest.mark.parametrize(("body", "type_", "field"), BAD_BODIES)
@ON_SQLITE_ONLY
async def test_unreadable_body_is_refused_and_records_nothing(
    client: AsyncTestClient, system: System, body: bytes, type_: str, field: str | None
) -> None:
    head = system.app.head()
    r = await client.post(RESPONSES, content=body, headers={"content-type": "application/json"})
    assert_problem(r, 400, type_, field)
    assert system.app.head() == head


@pytest.mark.parametrize(("answers", "field"), BAD_ANSWERS)
@ON_SQLITE_ONLY
async def test_answer_breaking_a_rule_is_refused_naming_it_and_records_nothing(
    client: AsyncTestClient, system: System, answers: dict[str, Any], field: str
) -> None:
    head = system.app.head()
    assert_problem(await client.post(RESPONSES, json={"answers": answers}), 422, "invalid-response", field)
    assert system.app.head() == head


async def test_contact_details_problem_says_responses_stay_anonymous(client: AsyncTestClient) -> None:
    r = await client.post(RESPONSES, json={"answers": {"familiarity": "read", "contact": "Ada <ada@example.org>"}})
    body = assert_problem(r, 422, "invalid-response", "answers.contact")
    assert "anonymous" in body["errors"][0]["detail"] and "sign up" in body["errors"][0]["detail"]


async def test_body_over_the_size_limit_is_refused_and_records_nothing(client: AsyncTestClient, system: System) -> None:
    head = system.app.head()
    big = {"answers": {"familiarity": "read", "works_well": "x" * 70_000}}
    assert_problem(await client.post(RESPONSES, json=big), 413, "body-too-large")
    assert system.app.head() == head


async def test_closed_consultation_refuses_response_and_records_nothing(client: AsyncTestClient, system: System) -> None:
    system.consultations.close(SLUG)
    head = system.app.head()
    body = assert_problem(await client.post(RESPONSES, json=GOOD), 409, "consultation-not-open")
    assert "closed" in body["detail"]
    assert system.app.head() == head


async def test_consultation_not_yet_open_refuses_response_and_records_nothing(
    client: AsyncTestClient, system: System, seed: Definition
) -> None:
    later = msgspec.structs.replace(seed, slug="opens-tomorrow", opens_at=datetime.now(UTC) + timedelta(days=1))
    system.consultations.load(later)
    head = system.app.head()
    body = assert_problem(await client.post("/consultations/opens-tomorrow/responses", json=GOOD), 409, "consultation-not-open")
    assert "opens at" in body["detail"]
    assert system.app.head() == head


async def test_unknown_consultation_refuses_response_and_records_nothing(client: AsyncTestClient, system: System) -> None:
    head = system.app.head()
    assert_problem(await client.post("/consultations/nowhere/responses", json=GOOD), 404, "consultation-not-found")
    assert system.app.head() == head


async def test_retry_with_the_same_idempotency_key_returns_the_first_receipt(client: AsyncTestClient, system: System) -> None:
    first = await client.post(RESPONSES, json=GOOD, headers={"Idempotency-Key": "3f9c1a6e-retry-one"})
    head = system.app.head()
    again = await client.post(RESPONSES, json=GOOD, headers={"Idempotency-Key": "3f9c1a6e-retry-one"})
    assert first.status_code == again.status_code == 201
    assert (again.json()["id"], again.json()["receipt"]) == (first.json()["id"], first.json()["receipt"])
    assert again.json()["position"] >= first.json()["position"]  # good for `?after=`
    assert system.app.head() == head


async def test_idempotency_key_reused_with_another_body_is_a_problem(client: AsyncTestClient, system: System) -> None:
    await client.post(RESPONSES, json=GOOD, headers={"Idempotency-Key": "3f9c1a6e-retry-two"})
    head = system.app.head()
    other = {"answers": {"familiarity": "not_aware"}}
    body = assert_problem(await client.post(RESPONSES, json=other, headers={"Idempotency-Key": "3f9c1a6e-retry-two"}), 422, "idempotency-key-reused")
    assert body["errors"] == [{"field": "Idempotency-Key", "detail": body["detail"]}]
    assert system.app.head() == head


async def test_keyed_submissions_leave_nothing_in_redis_and_short_keys_are_refused(
    client: AsyncTestClient, system: System, store_env: dict[str, str], settings, sync_redis
) -> None:
    key = "7d1f0c9e-2b1a-4c55-9f0e-2f6f1c1b7a11"
    receipt = (await client.post(RESPONSES, json=GOOD, headers={"Idempotency-Key": key})).json()["receipt"]
    assert not list(sync_redis.scan_iter(match=f"{settings.redis_prefix}:idempotency*"))  # the event store decides
    assert receipt.encode() not in raw_storage(store_env) and key.encode() not in raw_storage(store_env)
    head = system.app.head()
    short = await client.post(RESPONSES, json=GOOD, headers={"Idempotency-Key": "1"})
    assert_problem(short, 400, "malformed-request")
    assert system.app.head() == head


async def test_refused_request_frees_its_idempotency_key_for_a_corrected_retry(client: AsyncTestClient) -> None:
    bad = await client.post(RESPONSES, json={"answers": {"familiarity": "often"}}, headers={"Idempotency-Key": "3f9c1a6e-retry-three"})
    assert bad.status_code == 422
    good = await client.post(RESPONSES, json=GOOD, headers={"Idempotency-Key": "3f9c1a6e-retry-three"})
    assert good.status_code == 201


async def test_stats_waiting_for_a_position_never_reached_answers_503(system: System, store_env: dict[str, str], settings) -> None:
    quick = msgspec.structs.replace(settings, view_wait_seconds=0.2)
    async with AsyncTestClient(create_app(quick, store_env)) as client:
        r = await client.get(STATS, params={"after": system.app.head() + 1000})
    assert_problem(r, 503, "view-behind")
    assert r.headers["retry-after"] == "1"


async def test_stats_after_must_be_a_non_negative_integer(client: AsyncTestClient) -> None:
    assert_problem(await client.get(STATS, params={"after": "-1"}), 400, "malformed-request")
    assert_problem(await client.get(STATS, params={"after": "soon"}), 400, "malformed-request")


async def test_public_posts_are_rate_limited_per_client_without_storing_the_address(
    system: System, store_env: dict[str, str], settings, sync_redis
) -> None:
    strict = msgspec.structs.replace(settings, rate_limit_per_minute=3, sign_in_rate_limit_per_minute=2)
    system.staff.enrol("root@example.org", "Root", PASSWORD, [Role.ADMIN], by=None)
    sign_in = {"email": "root@example.org", "password": PASSWORD}
    async with AsyncTestClient(create_app(strict, store_env)) as client:
        statuses = [(await client.post(RESPONSES, json=GOOD)).status_code for _ in range(4)]
        assert statuses == [201, 201, 201, 429]
        limited = await client.post(RESPONSES, json=GOOD)
        assert_problem(limited, 429, "rate-limited")
        assert int(limited.headers["retry-after"]) > 0
        assert limited.json()["detail"].endswith(f"Try again in {limited.headers['retry-after']} s.")  # a newcomer's: it said "Too Many Requests"
        assert (await client.get(FORM)).status_code == 200  # reading is not limited
        # Staff behind the same address still sign in: a bucket of its own, with its own limit.
        assert [(await client.post("/staff/token", json=sign_in)).status_code for _ in range(3)] == [201, 201, 429]
    keys = [k.decode() for k in sync_redis.scan_iter(match=f"{settings.redis_prefix}:*")]
    address = "testclient"  # what the test client reports as its host
    assert not any(address in k for k in keys)
    for key in keys:
        if sync_redis.type(key) == b"string":
            assert address.encode() not in sync_redis.get(key)
    events = system.app.recorder.select_notifications(start=1, limit=1000)
    assert not any(address.encode() in n.state for n in events)


async def test_a_limit_of_zero_turns_that_limit_off_and_leaves_the_others(system: System, store_env: dict[str, str], settings) -> None:
    off = msgspec.structs.replace(settings, rate_limit_per_minute=0, sign_in_rate_limit_per_minute=1)
    system.staff.enrol("root@example.org", "Root", PASSWORD, [Role.ADMIN], by=None)
    async with AsyncTestClient(create_app(off, store_env)) as client:
        assert {(await client.post(RESPONSES, json=GOOD)).status_code for _ in range(5)} == {201}
        sign_in = {"email": "root@example.org", "password": PASSWORD}
        assert [(await client.post("/staff/token", json=sign_in)).status_code for _ in range(2)] == [201, 429]


async def test_openapi_schema_shows_the_body_constraints(client: AsyncTestClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    response_in = schema["components"]["schemas"]["ResponseIn"]
    answers = response_in["properties"]["answers"]
    assert answers["maxProperties"] == 50 and answers["propertyNames"] == {"maxLength": 40}
    assert response_in["required"] == ["answers"]
    params = schema["paths"]["/consultations/{slug}/responses"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in params)
    # Public routes ask for no credentials; staff routes for the bearer token.
    assert not schema["paths"]["/consultations/{slug}"]["get"].get("security")
    assert schema["paths"]["/review/consultations/{slug}/queue"]["get"]["security"] == [{"BearerToken": []}]
    assert "BearerToken" in schema["components"]["securitySchemes"]
    # Refusals are documented as problems.
    refused = schema["paths"]["/consultations/{slug}/responses"]["post"]["responses"]
    assert {"400", "404", "409", "413", "422", "429", "503"} <= refused.keys()
    assert "application/problem+json" in refused["422"]["content"]


@contextmanager
def writer_lock(store_env: dict[str, str], system: System) -> Iterator[None]:
    """Another writer holds the event store's write lock, as a long transaction would."""
    if store_env["PERSISTENCE_MODULE"] == "store.sqlite":
        conn = sqlite3.connect(store_env["SQLITE_DBNAME"], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    with psycopg.connect(POSTGRES) as conn:
        conn.execute(f"LOCK TABLE {store_env['POSTGRES_SCHEMA']}.{system.app.recorder.events_table_name.split('.')[-1]} IN EXCLUSIVE MODE")
        yield
        conn.rollback()


async def test_busy_event_store_is_a_503_problem_and_records_nothing(
    system: System, store_env: dict[str, str], settings
) -> None:
    impatient = {**store_env, "SQLITE_LOCK_TIMEOUT": "1", "POSTGRES_LOCK_TIMEOUT": "1"}
    async with AsyncTestClient(create_app(settings, impatient)) as client:
        head = system.app.head()
        with writer_lock(store_env, system):
            r = await client.post(RESPONSES, json=GOOD)
        assert_problem(r, 503, "store-unavailable")
        assert r.headers["retry-after"] == "1"
        assert system.app.head() == head
        retried = await client.post(RESPONSES, json=GOOD)
        assert retried.status_code == 201 and system.app.head() == head + 1

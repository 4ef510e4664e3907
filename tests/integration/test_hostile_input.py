"""Hostile input at the edge: each refused with a problem, never a 500, and nothing recorded."""

from __future__ import annotations

import json
import socket
from typing import Annotated, Any
from uuid import UUID

import httpx
import msgspec
import pytest
from litestar import Litestar, get
from litestar.params import QueryParameter
from litestar.plugins.problem_details import ProblemDetailsPlugin
from litestar.testing import AsyncTestClient

from api.edge import check_request
from domain.errors import InvalidInput
from runtime import System
from domain.consultations.consultation import Definition
from tests.conftest import ON_SQLITE_ONLY, PASSWORD, SLUG, caught_up
from tests.integration.test_signups import SESSIONS, future

RESPONSES = f"/consultations/{SLUG}/responses"
SIGNUPS = f"/consultations/{SLUG}/signups"
SIGNUP = {"session_id": "session_1300", "name": "Ada", "email": "ada@example.org", "consent": True}
DEEP = b"[" * 5000 + b"]" * 5000


def assert_problem(r, status: int, name: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"/problems/{name}"
    return body


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (RESPONSES, DEEP),
        (RESPONSES, b'{"answers": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}"),
        (RESPONSES, b'{"answers": {"familiarity": "read"}, "answers": {"familiarity": "know_well"}}'),
        (RESPONSES, b'{"answers": {"familiarity": "read", "familiarity": "know_well"}}'),
        (RESPONSES, b'{"answers": {"familiarity": "read"'),
        (RESPONSES, b'{"answers": {"familiarity": "\xff"}}'),
        ("/staff/token", DEEP),
        ("/staff/token", json.dumps({"email": "root@example.org", "password": 12345678901234}).encode()),
        (SIGNUPS, json.dumps({**SIGNUP, "consent": "true"}).encode()),
        (SIGNUPS, json.dumps({**SIGNUP, "consent": 1}).encode()),
    ],
    ids=["deep", "nested-answers", "duplicate-key", "duplicate-answer", "truncated", "not-utf8", "deep-sign-in", "number-password", "consent-string", "consent-number"],
)
@ON_SQLITE_ONLY
async def test_unreadable_or_loosely_typed_bodies_are_400_and_record_nothing(client: AsyncTestClient, system: System, path: str, body: bytes) -> None:
    head = system.app.head()
    r = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "malformed-request")
    assert system.app.head() == head


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None, "application/json; charset=latin-1"],
)
async def test_bodies_not_sent_as_json_are_415_and_record_nothing(client: AsyncTestClient, system: System, content_type: str | None) -> None:
    """A page on another site can post text/plain without a CORS preflight: such a post must never count."""
    head = system.app.head()
    for path, body in ((RESPONSES, {"answers": {"familiarity": "read"}}), (SIGNUPS, SIGNUP)):
        headers = {"Content-Type": content_type} if content_type else {}
        r = await client.post(path, content=json.dumps(body).encode(), headers=headers)
        if content_type is None:  # httpx sends none for raw content
            assert "content-type" not in r.request.headers
        assert_problem(r, 415, "unsupported-media-type")
        assert r.headers["Accept-Post"] == "application/json"
    assert system.app.head() == head


async def test_json_with_a_utf8_charset_is_taken(client: AsyncTestClient) -> None:
    body = json.dumps({"answers": {"familiarity": "read"}}).encode()
    r = await client.post(RESPONSES, content=body, headers={"Content-Type": "application/json; charset=UTF-8"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("answer", ["\u200b\u200b\u200b", "\x00\x00", " \u2060\ufeff\n\t", "\u202e"])
async def test_an_answer_that_shows_nothing_is_blank(client: AsyncTestClient, system: System, answer: str) -> None:
    r = await client.post(RESPONSES, json={"answers": {"familiarity": "read", "works_well": answer}})
    assert r.status_code == 201, r.text
    assert "works_well" not in system.review.answers(UUID(r.json()["id"]))


async def test_free_text_is_stored_in_nfc_without_control_characters(client: AsyncTestClient, system: System) -> None:
    r = await client.post(RESPONSES, json={"answers": {"familiarity": "read", "works_well": "Cafe\u0301\x00 ok\r\nnext\x1b[31m"}})
    assert r.status_code == 201, r.text
    assert system.review.answers(UUID(r.json()["id"]))["works_well"] == "Caf\u00e9 ok\nnext[31m"


async def test_problems_quote_a_short_escaped_excerpt_only(client: AsyncTestClient) -> None:
    huge = "<script>" + "x" * 60_000
    body = assert_problem(await client.post(RESPONSES, json={"answers": {"familiarity": huge}}), 422, "invalid-response")
    assert len(json.dumps(body)) < 1000 and "xxxxxxxxxx" * 10 not in json.dumps(body)
    unknown = assert_problem(await client.post(RESPONSES, json={"answers": {"familiarity": "read"}, "y" * 5000: 1}), 400, "malformed-request")
    assert len(json.dumps(unknown)) < 1000


@pytest.mark.parametrize("name", ["\u200b", "Ada\x00", "\u202eadA", "Ada \u2066x\u2069", " \t "])
@ON_SQLITE_ONLY
async def test_signup_names_that_hide_or_reorder_text_are_refused(client: AsyncTestClient, system: System, seed: Definition, name: str) -> None:
    system.consultations.load(future(seed))
    await caught_up(client, system.app.head())
    head = system.app.head()
    r = await client.post(f"/consultations/{SESSIONS}/signups", json={**SIGNUP, "name": name})
    body = assert_problem(r, 422, "invalid-input")
    assert [e["field"] for e in body["errors"]] == ["name"]
    assert system.app.head() == head


@pytest.mark.parametrize("name", ["\u200b\u200b", "Root\x00", "\u202eRoot"])
def test_staff_names_follow_the_same_rule(system: System, name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        system.staff.enrol("someone@example.org", name, PASSWORD, [], by=None)
    assert [e.field for e in refused.value.errors] == ["name"]


def test_names_are_stored_in_nfc_on_one_line(system: System) -> None:
    member = system.staff.get(system.staff.enrol("jose@example.org", "Jose\u0301\n  Nu\u00f1ez", PASSWORD, [], by=None))
    assert system.staff.contact(member).name == "Jos\u00e9 Nu\u00f1ez"


@pytest.mark.parametrize("after", ["1e3", "1.9", "0x10", " 1", "9" * 19, "١"])
@ON_SQLITE_ONLY
async def test_integer_query_parameters_are_written_as_integers(client: AsyncTestClient, after: str) -> None:
    body = assert_problem(await client.get(f"/consultations/{SLUG}/stats", params={"after": after}), 400, "malformed-request")
    assert body["errors"][0]["field"] == "after"


async def test_problems_never_repeat_the_query_string(client: AsyncTestClient) -> None:
    """A signup link's token sits in its query string: a problem must not carry it into logs or pages."""
    secret = "T0KEN-do-not-echo"
    for method, path in (("POST", "/signups/6f1c1b7a-2b1a-4c55-9f0e-2f6f1c1b7a11/explode"), ("GET", "/nowhere"), ("DELETE", f"/consultations/{SLUG}")):
        r = await client.request(method, path, params={"token": secret})
        assert r.status_code in (400, 404, 405) and secret not in r.text, r.text
    # A required parameter missing: named, and the rest of the query left out.
    for path, params, missing in (
        ("/signups/6f1c1b7a-2b1a-4c55-9f0e-2f6f1c1b7a11/confirm", {"session_id": "session_1800", "utm": secret}, "token"),
        ("/audit/consistency", {"to": "10"}, "from"),
    ):
        body = assert_problem(await client.request("POST" if "signups" in path else "GET", path, params=params), 400, "malformed-request")
        assert secret not in str(body) and "?" not in body["detail"] and body["errors"] == [{"field": missing, "detail": body["detail"]}], body


async def test_head_answers_as_get_without_the_body(client: AsyncTestClient) -> None:
    for path in (f"/consultations/{SLUG}", f"/consultations/{SLUG}/stats", "/schema/openapi.json", "/consultations/nowhere"):
        got, head = await client.get(path), await client.head(path)
        assert head.status_code == got.status_code and head.content == b""
        assert {k: v for k, v in head.headers.items() if k != "date"} == {k: v for k, v in got.headers.items() if k != "date"}
    assert (await client.head("/review/consultations/code-of-conduct-2026/queue")).status_code == 401  # a HEAD is no way around signing in


async def test_the_schema_states_that_bodies_take_no_unknown_fields(client: AsyncTestClient) -> None:
    schemas = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    for name in ("ResponseIn", "SignupIn", "Credentials", "NoteIn"):
        assert schemas[name]["additionalProperties"] is False, name


@pytest.mark.parametrize("path", [f"/consultations/{SLUG}", f"/consultations/{SLUG}/stats", "/audit/checkpoints"])
@ON_SQLITE_ONLY
async def test_a_query_parameter_the_route_does_not_take_is_refused(client: AsyncTestClient, path: str) -> None:
    body = assert_problem(await client.get(path, params={"afetr": "3"}), 400, "unknown-parameter")
    assert body["errors"][0]["field"] == "afetr" and "after" in body["detail"]
    takes = body["detail"].split("takes: ")[1]
    # Names the handler has for other things (its dependencies, its path's parameters) are no query parameters.
    for name in ("system", "services", "slug"):
        body = assert_problem(await client.get(path, params={name: "1"}), 400, "unknown-parameter")
        assert body["detail"].split("takes: ")[1] == takes and name not in takes, body


async def test_pages_opened_from_an_email_take_what_a_mail_client_appends(client: AsyncTestClient) -> None:
    r = await client.get("/signups/6f1c1b7a-2b1a-4c55-9f0e-2f6f1c1b7a11/confirm", params={"token": "x" * 20, "utm_source": "mail"})
    assert r.status_code != 400 and "unknown-parameter" not in r.text, r.text


@pytest.mark.parametrize(
    ("path", "query", "name"),
    [
        (f"/consultations/{SLUG}/stats", "after=1&after=2", "after"),
        ("/audit/checkpoints", "limit=5&after=0&limit=1", "limit"),
        ("/audit/consistency", "from=1&to=2&from=1", "from"),
        ("/audit/events", "after=1&after=2", "after"),
        ("/audit/events", "type=consultation.opened&type=review.claimed", "type"),
        ("/signups/6f1c1b7a-2b1a-4c55-9f0e-2f6f1c1b7a11/confirm", "token=a&token=b", "token"),  # a page that takes any other query
    ],
)
@ON_SQLITE_ONLY
async def test_a_query_parameter_given_twice_is_refused_by_name(
    client: AsyncTestClient, headers: dict[str, dict[str, str]], path: str, query: str, name: str
) -> None:
    """litestar would answer `after=1&after=2` from one of them, and `type=a&type=b` as filtered by one type only."""
    r = await client.get(f"{path}?{query}", headers=headers["auditor"])
    body = assert_problem(r, 400, "malformed-request")
    assert body["errors"] == [{"field": name, "detail": body["detail"]}] and f" {name} " in body["detail"], body


@pytest.mark.parametrize("name", ["Idempotency-Key", "Content-Type", "Authorization"])
@ON_SQLITE_ONLY
def test_a_single_valued_header_given_twice_is_refused_by_name(live_url: str, system: System, name: str) -> None:
    """A tester's retry could carry another key than the one recorded: litestar read the first copy, a proxy may keep
    the last. Over real HTTP (a test client joins the copies with a comma, as a proxy may: refused too for the key)."""
    copies = {"Idempotency-Key": ["a" * 20, "b" * 20], "Content-Type": ["application/json", "text/plain"], "Authorization": ["Bearer x"] * 2}
    given = [(k, v) for k, v in [("Content-Type", "application/json"), ("Idempotency-Key", "c" * 20)] if k != name]
    head = system.app.head()
    for sent in ([(name, v) for v in copies[name]], [(name, ", ".join(copies[name]))] if name == "Idempotency-Key" else []):
        if not sent:
            continue
        r = httpx.post(f"{live_url}/consultations/{SLUG}/responses", content=b'{"answers": {"familiarity": "read"}}', headers=given + sent)
        body = assert_problem(r, 400, "malformed-request")
        assert body["errors"] == [{"field": name, "detail": body["detail"]}] and f" {name} " in body["detail"], body
    assert system.app.head() == head


@pytest.mark.parametrize("after", [" ", "\t"])
@ON_SQLITE_ONLY
def test_an_idempotency_key_with_whitespace_after_it_is_refused(live_url: str, system: System, after: str) -> None:
    """A tester got two responses for `K` and `K `: HTTP does not count the whitespace, and a proxy may trim it.
    Over a raw socket: HTTP clients refuse to send such a header."""
    head = system.app.head()
    body = b'{"answers": {"familiarity": "read"}}'
    host, port = live_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /consultations/{SLUG}/responses HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: {'k' * 20}{after}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    problem = msgspec.json.decode(answer.split(b"\r\n\r\n", 1)[1])
    assert problem["errors"] == [{"field": "Idempotency-Key", "detail": problem["detail"]}] and "whitespace" in problem["detail"], problem
    assert system.app.head() == head


async def test_a_query_parameter_that_takes_a_list_may_be_given_more_than_once() -> None:
    @get("/tagged", sync_to_thread=False)
    def tagged(tag: Annotated[list[str] | None, QueryParameter()] = None, after: Annotated[int, QueryParameter()] = 0) -> dict[str, Any]:
        return {"tag": tag, "after": after}

    async with AsyncTestClient(Litestar([tagged], before_request=check_request, plugins=[ProblemDetailsPlugin()])) as client:
        r = await client.get("/tagged?tag=a&tag=b&after=3")
        assert r.status_code == 200 and r.json() == {"tag": ["a", "b"], "after": 3}, r.text
        assert_problem(await client.get("/tagged?tag=a&after=3&after=4"), 400, "malformed-request")

"""The auditors' routes: the whole history in order, filtered, streamed; the staff directory; views at a position;
and never a name, email, password hash, receipt or sealed text in any of their answers."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from audit.replay import view_at
from domain.access.service import ATTENDEES
from domain.consultations.consultation import Definition, Theme, consultation_id
from domain.consultations.service import hash_receipt
from domain.campaigns.cluster import assignment_id
from domain.review.case import Flag, Outcome, case_id
from domain.review.frame import frame_id
from domain.signups.signup import Purpose, seats_id
from domain.staff.member import Role
from runtime import System
from runtime.settings import Settings
from tests.conftest import ON_SQLITE_ONLY, SLUG
from tests.integration.test_signups import SESSIONS, future

SECRET_NAME = "Jane Roe-Secretly"
SECRET_TEXT = f"Ring {SECRET_NAME} on +44 20 7946 0000 about the AI section."
SIGNUP_NAME, SIGNUP_EMAIL = "Zelda Privateperson", "zelda.private@example.net"
ERASED_NAME, ERASED_EMAIL = "Erik Erasable", "erik.erasable@example.net"
ROUTES = ["/audit/events", "/audit/staff", "/audit/views/form", "/audit/views/stats", "/audit/views/queue", "/audit/views/report"]


class Run(msgspec.Struct):
    secrets: list[bytes]  # what must never appear in an auditor's answer
    responses: list[UUID]  # of the seed consultation; the first is reviewed, redacted and shredded
    other_response: UUID  # of the working-sessions consultation
    signups: list[UUID]  # confirmed, erased


def a_full_run(system: System, staff: dict[str, UUID], seed: Definition) -> Run:
    """Every kind of event the log holds: staff changes, consultation changes, the frame, responses
    with sealed text, a whole review with a redaction shredded, signups confirmed and erased, mail, an access."""
    admin, reviewer, editor = staff["admin"], staff["reviewer"], staff["editor"]
    system.consultations.load(future(seed))
    system.staff.grant(staff["reviewer2"], Role.EDITOR, admin)
    system.staff.revoke(staff["reviewer2"], Role.EDITOR, admin)
    system.staff.deactivate(staff["reviewer2"], admin)
    system.consultations.set_draft_url(SLUG, "https://example.org/draft-2")
    system.consultations.close(SLUG)
    system.consultations.open(SLUG)
    system.review.add_theme(SLUG, Theme("extra", "Extra"), editor)
    receipts = [system.consultations.submit(SLUG, {"familiarity": "read", "works_well": SECRET_TEXT}) for _ in range(3)]
    other = system.consultations.submit(SESSIONS, {"familiarity": "aware_not_read", "works_well": SECRET_TEXT})
    first = receipts[0].id
    system.review.claim(first, reviewer, timedelta(minutes=30))
    system.review.note(first, reviewer, "Names someone.")
    system.review.tag(first, reviewer, "ai_use")
    system.review.flag(first, reviewer, Flag.PERSONAL_DATA, "a name and a number")
    system.review.mark_quote(first, reviewer, "works_well", 0, 4)
    start = SECRET_TEXT.index(SECRET_NAME)
    system.review.redact(first, reviewer, "works_well", start, start + len(SECRET_NAME), "a name")
    system.review.shred_originals(first, admin, "works_well")
    system.review.complete(first, reviewer, Outcome.REVIEWED, "")
    system.review.reopen(first, editor, "Once more.")
    system.review.claim(receipts[1].id, reviewer, timedelta(minutes=30))
    kept = system.signups.request(SESSIONS, "session_1300", SIGNUP_NAME, SIGNUP_EMAIL, True)
    system.signups.confirm(kept, system.signups.links.token(Purpose.CONFIRM, kept, 1))
    system.signups.record_sent(kept, "<confirmed@agora.test>")
    erased = system.signups.request(SESSIONS, "session_1300", ERASED_NAME, ERASED_EMAIL, True)
    system.signups.erase(erased, token=None)
    system.access.record(admin, ATTENDEES, f"{SESSIONS}/session_1300")
    members = [system.staff.get(m) for m in staff.values()]
    signups = [system.signups.get(s) for s in (kept, erased)]
    responses = [system.consultations.response(r.id) for r in [*receipts, other]]
    secrets = [
        SECRET_NAME, SECRET_TEXT, "20 7946 0000", SIGNUP_NAME, SIGNUP_EMAIL, ERASED_NAME, ERASED_EMAIL,
        *(system.staff.contact(m).email for m in members), *(system.staff.password_hash(m) for m in members),
        *(r.receipt for r in [*receipts, other]), *(hash_receipt(r.receipt) for r in [*receipts, other]),
        *(s.manage_hash for s in signups),
    ]
    ciphertexts = [s.contact.data for s in signups] + [t.data for r in responses for t in r.texts.values()]
    return Run(
        [s.encode() for s in secrets] + [base64.b64encode(c) for c in ciphertexts],
        [r.id for r in receipts], other.id, [kept, erased],
    )


@pytest.fixture
async def client(system: System, store_env: dict[str, str], settings: Settings):
    """The API without followers: auditing reads the log alone, and no mailer adds events while a test reads it."""
    async with AsyncTestClient(create_app(msgspec.structs.replace(settings, inline_followers=False), store_env)) as test_client:
        yield test_client


@pytest.fixture
def run(system: System, staff: dict[str, UUID], seed: Definition, headers: dict[str, dict[str, str]]) -> Run:
    """After the tokens are handed out: the run deactivates one of their holders."""
    return a_full_run(system, staff, seed)


async def every_page(client: AsyncTestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """All events through the pages, following `next` until it is null."""
    events, after = [], 0
    while after is not None:
        r = await client.get("/audit/events", params={**params, "after": after}, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["events"]) <= params.get("limit", 100)
        events += page["events"]
        after = page["next"]
    return events


def log_positions(system: System) -> list[int]:
    return [n.id for n in system.app.recorder.select_notifications(start=1, limit=100_000)]


@pytest.mark.parametrize("role", ["auditor", "admin"])
async def test_auditors_page_and_stream_through_every_event_in_order(
    client: AsyncTestClient, system: System, run: Run, headers: dict[str, dict[str, str]], role: str
) -> None:
    events = await every_page(client, headers[role], limit=7)
    assert [e["position"] for e in events] == log_positions(system)
    types = {e["type"] for e in events}
    assert {
        "consultation.created", "consultation.closed", "consultation.opened", "consultation.draft_link_set", "frame.created",
        "frame.theme_added", "staff.enrolled", "staff.role_granted", "staff.role_revoked", "staff.deactivated",
        "response.submitted", "review.opened", "review.claimed", "review.noted", "review.tagged", "review.flagged",
        "review.quote_marked", "review.redacted", "review.originals_shredded", "review.completed", "review.reopened",
        "signup.requested", "signup.confirmed", "signup.message_sent", "signup.erased", "seats.opened", "seats.taken",
        "access.recorded",
    } <= types
    claimed = next(e for e in events if e["type"] == "review.claimed")
    assert (claimed["actor"], claimed["actor_name"], claimed["aggregate"]) == (str(system.staff.get(UUID(claimed["actor"])).id), "Reviewer", "review_case")

    r = await client.get("/audit/events", headers={**headers[role], "Accept": "application/x-ndjson"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson"), r.content[:300]
    assert [json.loads(line) for line in r.content.splitlines()] == events
    r = await client.get("/audit/events", params={"after": 10, "limit": 5}, headers={**headers[role], "Accept": "application/x-ndjson"})
    assert [json.loads(line)["position"] for line in r.content.splitlines()] == log_positions(system)[10:15]


async def test_a_page_past_the_head_is_empty_and_the_last_page_says_so(client: AsyncTestClient, system: System, run: Run, headers: dict[str, dict[str, str]]) -> None:
    head = system.app.head()
    r = await client.get("/audit/events", params={"after": head - 2, "limit": 2}, headers=headers["auditor"])
    assert [e["position"] for e in r.json()["events"]] == [head - 1, head] and r.json()["next"] is None
    r = await client.get("/audit/events", params={"after": head - 3, "limit": 2}, headers=headers["auditor"])
    assert r.json()["next"] == head - 1
    r = await client.get("/audit/events", params={"after": head + 5}, headers=headers["auditor"])
    assert r.json() == {"events": [], "next": None}


async def test_no_name_email_password_hash_receipt_or_sealed_text_in_any_audit_answer(
    client: AsyncTestClient, system: System, run: Run, headers: dict[str, dict[str, str]]
) -> None:
    answers = b""
    for role in ("auditor", "admin"):
        for route in ROUTES:
            r = await client.get(route, params={"limit": 1000} if route == "/audit/events" else {}, headers=headers[role])
            assert r.status_code == 200, (route, r.text)
            answers += r.content
        r = await client.get("/audit/events", headers={**headers[role], "Accept": "application/x-ndjson"})
        answers += r.content
        for response in run.responses:
            answers += (await client.get(f"/review/responses/{response}/history", headers=headers[role])).content
    assert b"review.redacted" in answers and b'"sealed"' in answers and b"Zelda" not in answers
    leaked = [s for s in run.secrets if s in answers]
    assert leaked == []
    shredded = system.consultations.response(run.responses[0]).texts["works_well"].key_id
    assert json.dumps({"sealed": shredded, "state": "shredded"}, separators=(",", ":")).encode() in answers
    erased = system.signups.get(run.signups[1]).contact.key_id
    assert json.dumps({"sealed": erased, "state": "shredded"}, separators=(",", ":")).encode() in answers
    kept = system.signups.get(run.signups[0]).contact.key_id
    assert json.dumps({"sealed": kept, "state": "present"}, separators=(",", ":")).encode() in answers


async def test_filters_pick_one_response_one_actor_one_type_one_consultation_one_aggregate_and_a_time_range(
    client: AsyncTestClient, system: System, run: Run, staff: dict[str, UUID], headers: dict[str, dict[str, str]]
) -> None:
    auditor = headers["auditor"]
    first = run.responses[0]
    assert (await client.get(f"/review/responses/{first}", headers=auditor)).status_code == 200  # its text read: on record
    everything = await every_page(client, auditor, limit=1000)

    async def picked(**params: Any) -> list[dict[str, Any]]:
        return await every_page(client, auditor, limit=3, **params)

    of_first = await picked(response=str(first))
    read = [e for e in everything if e["type"] == "access.recorded" and str(first) in e["payload"]["subject"].split(",")]
    own = (str(first), str(case_id(first)), str(assignment_id(first)))
    assert read and of_first == [e for e in everything if e["aggregate_id"] in own or e in read]  # who read it too (an auditor asked)
    assert [e["type"] for e in of_first][:3] == ["response.submitted", "review.opened", "review.claimed"]
    history = (await client.get(f"/review/responses/{first}/history", headers=auditor)).json()
    assert [e for e in of_first if e["type"] != "access.recorded"] == history

    by_editor = await picked(actor=str(staff["editor"]))
    assert {e["type"] for e in by_editor} == {"frame.theme_added", "review.reopened"}
    assert by_editor == [e for e in everything if e["actor"] == str(staff["editor"])]

    assert await picked(type="staff.role_granted") == [e for e in everything if e["type"] == "staff.role_granted"] != []

    sessions = consultation_id(SESSIONS)
    ids = {sessions, frame_id(sessions), seats_id(sessions, "session_1300"), run.other_response, case_id(run.other_response), *run.signups}
    of_sessions = await picked(consultation=SESSIONS)
    attendees = [e for e in everything if e["type"] == "access.recorded" and e["payload"]["subject"] == f"{SESSIONS}/session_1300"]
    assert attendees and of_sessions == [e for e in everything if UUID(e["aggregate_id"]) in ids or e in attendees]  # who saw its attendees too
    assert {e["type"] for e in of_sessions} >= {"consultation.created", "frame.created", "response.submitted", "signup.requested", "signup.erased", "seats.taken"}
    of_seed = await picked(consultation=SLUG)
    assert not {e["position"] for e in of_seed} & {e["position"] for e in of_sessions}
    assert {e["type"] for e in of_seed} >= {"review.redacted", "frame.theme_added", "consultation.closed"}
    assert "staff.enrolled" not in {e["type"] for e in of_seed + of_sessions}
    # Who read a consultation's personal data is the consultation's too (a tester's filter answered none).
    assert [e for e in of_seed if e["type"] == "access.recorded"] == read

    signup = run.signups[0]
    assert await picked(aggregate=str(signup)) == [e for e in everything if e["aggregate_id"] == str(signup)]
    assert await picked(aggregate=str(signup), response=str(first)) == []

    middle = everything[len(everything) // 2]
    since = await picked(**{"from": middle["recorded_at"]})
    assert since[0] == middle and since == [e for e in everything if e["recorded_at"] >= middle["recorded_at"]]
    before = await picked(to=middle["recorded_at"])
    assert before == [e for e in everything if e["recorded_at"] < middle["recorded_at"]]
    assert await picked(**{"from": middle["recorded_at"], "to": everything[-1]["recorded_at"], "type": middle["type"]}) == [
        e for e in everything[everything.index(middle) : -1] if e["type"] == middle["type"] and e["recorded_at"] < everything[-1]["recorded_at"]
    ]


async def test_the_staff_directory_names_roles_and_state_never_emails(
    client: AsyncTestClient, system: System, run: Run, staff: dict[str, UUID], headers: dict[str, dict[str, str]]
) -> None:
    r = await client.get("/audit/staff", headers=headers["admin"])
    assert r.status_code == 200
    directory = {UUID(m["id"]): m for m in r.json()}
    assert set(directory) == set(staff.values())
    assert set(directory[staff["reviewer2"]]) == {"id", "name", "roles", "active", "enrolled_at"}
    assert (directory[staff["reviewer2"]]["name"], directory[staff["reviewer2"]]["roles"], directory[staff["reviewer2"]]["active"]) == ("Second", ["reviewer"], False)
    assert (directory[staff["admin"]]["roles"], directory[staff["admin"]]["active"]) == (["admin"], True)
    assert b"@example.org" not in r.content


async def test_a_view_at_a_position_is_the_replay_over_http(client: AsyncTestClient, system: System, run: Run, headers: dict[str, dict[str, str]]) -> None:
    for view in ("form", "stats", "queue", "report"):
        for at in (1, 9, system.app.head()):
            r = await client.get(f"/audit/views/{view}", params={"at": at}, headers=headers["auditor"])
            assert r.status_code == 200 and r.content == view_at(system.app, view, at)
            assert r.json()["position"] == at
    head = await client.get("/audit/views/stats", headers=headers["auditor"])
    assert head.content == view_at(system.app, "stats", system.app.head())
    assert head.json()["consultations"][SLUG]["responses"] == 3 and head.json()["consultations"][SESSIONS]["responses"] == 1


@pytest.mark.parametrize("route", [*ROUTES, f"/review/responses/{UUID(int=1)}/history"])
@ON_SQLITE_ONLY
async def test_reviewers_and_editors_are_refused_and_strangers_must_sign_in(
    client: AsyncTestClient, headers: dict[str, dict[str, str]], route: str
) -> None:
    assert (await client.get(route)).status_code == 401
    if route.startswith("/audit"):
        for role in ("reviewer", "editor"):
            r = await client.get(route, headers=headers[role])
            assert r.status_code == 403 and r.json()["type"] == "/problems/not-permitted", role


DECLARED = {"/audit/events": {"after", "limit", "consultation", "aggregate", "response", "type", "actor", "from", "to"}, "/audit/staff": set()}


@pytest.mark.parametrize("route", ROUTES)
@ON_SQLITE_ONLY
async def test_unknown_query_parameters_are_refused_not_ignored(client: AsyncTestClient, headers: dict[str, dict[str, str]], route: str) -> None:
    declared = DECLARED.get(route, {"at"})
    for params in ({"consultaton": SLUG}, {"limit": 5, "sort": "desc"}, {"at": 1, "after": 1}, {"system": 1}, {"view": "form"}):
        unknown = set(params) - declared
        r = await client.get(route, params=params, headers=headers["auditor"])
        assert r.status_code == 400 and r.json()["type"] == "/problems/unknown-parameter", (params, r.text)
        assert all(name in r.json()["detail"] for name in unknown)
        assert set(r.json()["detail"].split("takes: ")[1].rstrip(".").split(", ")) == (declared or {"none"})


@pytest.mark.parametrize(
    ("params", "status", "problem"),
    [
        ({"limit": 0}, 400, "malformed-request"),
        ({"limit": 1001}, 400, "malformed-request"),
        ({"limit": "many"}, 400, "malformed-request"),
        ({"after": -1}, 400, "malformed-request"),
        ({"after": "start"}, 400, "malformed-request"),
        ({"from": "yesterday"}, 400, "malformed-request"),
        ({"from": "2026-05-07T13:00:00"}, 422, "invalid-input"),
        ({"from": "2026-05-07T13:00:00Z", "to": "2026-05-07T12:00:00Z"}, 422, "invalid-input"),
        ({"actor": "not-a-uuid"}, 400, "malformed-request"),
        ({"type": "review.claimd"}, 422, "invalid-input"),  # a misspelt type finds nothing, which would read as "never happened"
        ({"type": "review.event"}, 422, "invalid-input"),
        ({"consultation": "no-such-one"}, 404, "consultation-not-found"),
        ({"response": str(uuid4())}, 404, "response-not-found"),
    ],
)
@ON_SQLITE_ONLY
async def test_bad_filters_are_problems(
    client: AsyncTestClient, headers: dict[str, dict[str, str]], params: dict[str, Any], status: int, problem: str
) -> None:
    r = await client.get("/audit/events", params=params, headers=headers["auditor"])
    assert (r.status_code, r.json()["type"]) == (status, f"/problems/{problem}"), r.text
    if params.get("type") == "review.claimd":
        assert r.json()["errors"][0]["field"] == "type" and "Did you mean review.claimed," in r.json()["errors"][0]["detail"]


async def test_an_unknown_view_or_a_position_past_the_head_is_a_problem(
    client: AsyncTestClient, system: System, headers: dict[str, dict[str, str]]
) -> None:
    r = await client.get("/audit/views/nonsense", headers=headers["auditor"])
    assert (r.status_code, r.json()["type"]) == (404, "/problems/view-not-found") and "form, stats, queue, report" in r.json()["detail"]
    r = await client.get(f"/audit/views/{'v' * 5000}", headers=headers["auditor"])  # quoted as a short excerpt
    assert r.status_code == 404 and f"'{'v' * 40}…'" in r.json()["detail"] and len(r.json()["detail"]) < 200
    r = await client.get("/audit/views/stats", params={"at": system.app.head() + 1}, headers=headers["auditor"])
    assert (r.status_code, r.json()["type"]) == (422, "/problems/position-past-head")
    r = await client.get("/audit/views/stats", params={"at": -1}, headers=headers["auditor"])
    assert r.status_code == 400
    with pytest.raises(ValueError, match="the views are: form, stats, queue, report"):
        view_at(system.app, "nonsense", None)
    with pytest.raises(ValueError, match="not in the log"):
        view_at(system.app, "form", system.app.head() + 1)

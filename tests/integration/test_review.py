"""The review queue through HTTP: every staff route by role, claims under concurrency, tags, flags, quotes, the coding frame, the audit trail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from domain.consultations.service import Submission
from api.app import create_app
from runtime import System
from runtime.settings import Settings
from workers import views
from workers.follower import Follower
from domain.consultations.consultation import Consultation, Definition, Theme
from domain.errors import InvalidInput
from domain.review.case import ClaimConflict, Outcome
from domain.staff.member import Role
from tests.conftest import ON_SQLITE_ONLY, PASSWORD, ROLES, SLUG, submit, token
from tests.integration.test_group_review import campaign

R = "/review/responses/{id}"
C = "/review/consultations/code-of-conduct-2026"
MATRIX = [
    ("GET", "/staff/me", None, {"reviewer", "editor", "auditor", "admin"}),
    ("POST", "/staff", {"email": "x{n}@example.org", "name": "X", "password": PASSWORD}, {"admin"}),
    ("PUT", "/staff/{member}/roles/editor", None, {"admin"}),
    ("DELETE", "/staff/{member}/roles/editor", None, {"admin"}),
    ("POST", "/staff/{member}/deactivate", None, {"admin"}),
    ("GET", "/staff", None, {"admin"}),
    ("POST", "/staff/{member}/reactivate", None, {"admin"}),
    ("POST", "/staff/{member}/sign-out", None, {"admin"}),
    ("POST", "/staff/me/sign-out", None, {"reviewer", "editor", "auditor", "admin"}),
    ("GET", "/review/consultations", None, {"reviewer", "editor", "auditor"}),
    ("GET", "/review/consultations/code-of-conduct-2026/queue", None, {"reviewer", "editor", "auditor"}),
    ("GET", "/review/consultations/code-of-conduct-2026/progress", None, {"reviewer", "editor", "auditor"}),
    ("POST", "/review/consultations/code-of-conduct-2026/claim-next", None, {"reviewer"}),
    ("POST", R + "/claim", None, {"reviewer"}),
    ("POST", R + "/release", None, {"reviewer"}),
    ("POST", R + "/notes", {"text": "a note"}, {"reviewer"}),
    ("POST", R + "/tags", {"theme_id": "consent"}, {"reviewer"}),
    ("DELETE", R + "/tags/consent", None, {"reviewer"}),
    ("POST", R + "/flags", {"flag": "spam", "reason": "advert"}, {"reviewer"}),
    ("POST", R + "/flags/spam/remove", {"reason": "not spam"}, {"reviewer"}),
    ("POST", R + "/quotes", {"question_id": "works_well", "start": 0, "end": 6}, {"reviewer"}),
    ("POST", R + "/quotes/unmark", {"question_id": "works_well", "start": 0, "end": 6, "reason": "no"}, {"reviewer"}),
    ("POST", R + "/redactions/works_well/revert", {"reason": "no"}, {"reviewer"}),
    ("POST", R + "/redactions", {"question_id": "works_well", "start": 0, "end": 6, "reason": "a name"}, {"reviewer"}),
    ("POST", R + "/redactions/works_well/shred", None, {"admin"}),
    ("POST", R + "/complete", {"outcome": "reviewed"}, {"reviewer"}),
    ("POST", R + "/reopen", {"reason": "look again"}, {"editor"}),
    ("GET", R, None, {"reviewer", "editor", "auditor"}),
    ("GET", R + "/case", None, {"reviewer", "editor", "auditor", "admin"}),
    ("GET", R + "/history", None, {"reviewer", "editor", "auditor"}),
    ("GET", "/review/consultations/code-of-conduct-2026/themes", None, {"reviewer", "editor", "auditor"}),
    ("POST", "/review/consultations/code-of-conduct-2026/themes", {"id": "t{n}", "label": "New"}, {"editor"}),
    ("PUT", "/review/consultations/code-of-conduct-2026/themes/consent", {"id": "consent", "label": "Consent!"}, {"editor"}),
    ("DELETE", "/review/consultations/code-of-conduct-2026/themes/clarity_language", None, {"editor"}),
    ("POST", C + "/clusters/{cluster}/review", {"outcome": "reviewed"}, {"reviewer"}),  # a confirmed campaign's
]


# What an action on a response needs done first (by a reviewer), so that an allowed role succeeds.
NEEDS: dict[str, list[tuple[str, str, dict[str, object] | None]]] = {
    "/flags/spam/remove": [("POST", "/flags", {"flag": "spam", "reason": "advert"})],
    "/quotes/unmark": [("POST", "/quotes", {"question_id": "works_well", "start": 0, "end": 6})],
    "/redactions/works_well/revert": [("POST", "/redactions", {"question_id": "works_well", "start": 0, "end": 6, "reason": "a name"})],
    "/redactions/works_well/shred": [("POST", "/redactions", {"question_id": "works_well", "start": 0, "end": 6, "reason": "a name"})],
    "/reopen": [("POST", "/complete", {"outcome": "reviewed"})],
}


async def prepare(client: AsyncTestClient, reviewer: dict[str, str], method: str, path: str, response: UUID) -> None:
    """Claim the response (and do what the action needs) before an allowed role acts on it."""
    if not path.startswith(R) or method == "GET" or path == R + "/claim":
        return
    base = R.format(id=response)
    steps = [("POST", "/claim", None), *NEEDS.get(path.removeprefix(R), [])]
    for step_method, step, body in steps:
        r = await client.request(step_method, base + step, json=body, headers=reviewer)
        assert 200 <= r.status_code < 300, (step, r.text)


@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
@ON_SQLITE_ONLY
async def test_every_staff_endpoint_with_every_role_and_without_credentials(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
    method: str, path: str, body: dict[str, str] | None, allowed: set[str],
) -> None:
    responses = submit(system, 6)
    cluster = campaign(system, staff)[0] if "{cluster}" in path else None
    for n, role in enumerate([None, *ROLES]):
        member = system.staff.enrol(f"m{uuid4().hex[:8]}@example.org", "M", PASSWORD, [Role.EDITOR], by=staff["admin"]) if "{member}" in path else None
        url = path.format(id=responses[n], member=member, cluster=cluster)
        json = {k: v.format(n=uuid4().hex[:8]) if isinstance(v, str) else v for k, v in body.items()} if body else None
        if role in allowed:
            await prepare(client, headers["reviewer"], method, path, responses[n])
        r = await client.request(method, url, json=json, headers=headers[role] if role else {})
        if role is None:
            assert r.status_code == 401, (role, r.text)
        elif role in allowed:
            assert 200 <= r.status_code < 300, (role, r.text)  # with what the action needs done first, it succeeds
        else:
            assert r.status_code == 403, (role, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    assert [system.staff.get(m).active for m in staff.values()] == [True] * len(staff)


async def test_a_reviewer_works_a_response_from_claim_to_completion_with_its_history(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    first, second = submit(system, 2)
    page = (await client.get(C + "/queue", params={"after": system.app.head()}, headers=headers["reviewer"])).json()
    assert [i["response_id"] for i in page["items"]] == [str(first), str(second)]
    claimed = (await client.post(C + "/claim-next", headers=headers["reviewer"])).json()
    assert claimed["response_id"] == str(first)
    until = datetime.fromisoformat(claimed["claimed_until"])
    assert timedelta(minutes=29) < until - datetime.now(UTC) <= timedelta(minutes=30)

    taken = await client.post(f"/review/responses/{first}/notes", json={"text": "mine"}, headers=headers["reviewer2"])
    assert taken.status_code == 409
    assert taken.json()["holder"] == str(staff["reviewer"]) and datetime.fromisoformat(taken.json()["until"]) == until
    assert taken.json()["until"].endswith("Z") and taken.json()["detail"].endswith(f"until {taken.json()['until']}.")
    assert taken.json()["detail"].startswith("Claimed by Reviewer until")

    answers = (await client.get(f"/review/responses/{first}", headers=headers["reviewer"])).json()["answers"]
    assert answers == {"familiarity": "read", "works_well": "answer 0"}
    assert (await client.post(f"/review/responses/{first}/notes", json={"text": "Concrete about AI."}, headers=headers["reviewer"])).status_code == 201
    done = await client.post(f"/review/responses/{first}/complete", json={"outcome": "reviewed"}, headers=headers["reviewer"])
    assert done.status_code == 201
    progress = (await client.get(C + "/progress", params={"after": done.json()["position"]}, headers=headers["auditor"])).json()
    assert (progress["total"], progress["reviewed"], progress["percent_reviewed"]) == (2, 1, 50.0)

    again = await client.post(f"/review/responses/{first}/notes", json={"text": "more"}, headers=headers["reviewer"])
    assert again.status_code == 409 and again.json()["type"] == "/problems/review-completed"
    reopened = await client.post(f"/review/responses/{first}/reopen", json={"reason": "Check the quote."}, headers=headers["editor"])
    assert reopened.status_code == 201

    history = (await client.get(f"/review/responses/{first}/history", headers=headers["auditor"])).json()
    assert [(h["type"], h["actor"], h["actor_name"]) for h in history] == [
        ("response.submitted", None, None),
        ("review.opened", None, None),
        ("review.claimed", str(staff["reviewer"]), "Reviewer"),
        ("review.noted", str(staff["reviewer"]), "Reviewer"),
        ("review.completed", str(staff["reviewer"]), "Reviewer"),
        ("review.reopened", str(staff["editor"]), "Editor"),
    ]
    assert history[3]["payload"] == {"text": "Concrete about AI."}
    assert "answers" not in history[0]["payload"] and "receipt_hash" not in history[0]["payload"]
    positions = [h["position"] for h in history]
    assert positions == sorted(positions) and positions[-1] == reopened.json()["position"]
    queue = (await client.get(C + "/queue", params={"after": reopened.json()["position"]}, headers=headers["editor"])).json()
    assert [i["response_id"] for i in queue["items"]] == [str(first), str(second)]


@pytest.mark.parametrize(
    ("path", "body", "status", "type_"),
    [
        ("notes", {"text": "   "}, 422, "invalid-input"),
        ("notes", {"text": "x", "extra": 1}, 400, "malformed-request"),
        ("complete", {"outcome": "excluded", "reason": ""}, 422, "invalid-input"),
        ("complete", {"outcome": "perfect"}, 400, "malformed-request"),
        ("reopen", {"reason": "not completed"}, 409, "review-not-completed"),
    ],
)
@ON_SQLITE_ONLY
async def test_bad_review_actions_are_refused_and_record_nothing(
    client: AsyncTestClient, system: System, headers: dict[str, dict[str, str]], path: str, body: dict[str, Any], status: int, type_: str,
) -> None:
    (response,) = submit(system, 1)
    assert (await client.post(f"/review/responses/{response}/claim", headers=headers["reviewer"])).status_code == 201
    head = system.app.head()
    who = headers["editor"] if path == "reopen" else headers["reviewer"]
    r = await client.post(f"/review/responses/{response}/{path}", json=body, headers=who)
    assert r.status_code == status, r.text
    assert r.json()["type"] == f"/problems/{type_}"
    assert system.app.head() == head


async def test_acting_on_an_unknown_response_is_a_404(client: AsyncTestClient, headers: dict[str, dict[str, str]]) -> None:
    r = await client.post(f"/review/responses/{uuid4()}/claim", headers=headers["reviewer"])
    assert r.status_code == 404 and r.json()["type"] == "/problems/response-not-found"


def test_an_expired_lease_lets_another_reviewer_claim(system: System, staff: dict[str, UUID]) -> None:
    (response,) = submit(system, 1)
    system.review.claim(response, staff["reviewer"], timedelta(seconds=-1))  # a lease that has already run out
    until, _ = system.review.claim(response, staff["reviewer2"], timedelta(minutes=30))
    assert until > datetime.now(UTC)
    with pytest.raises(ClaimConflict):
        system.review.claim(response, staff["reviewer"], timedelta(minutes=30))


async def test_concurrent_claim_next_never_hands_out_the_same_response(live_url: str, system: System, staff: dict[str, UUID]) -> None:
    responses = submit(system, 6)
    reviewers = [system.staff.enrol(f"r{i}@example.org", f"R{i}", PASSWORD, [Role.REVIEWER], by=staff["admin"]) for i in range(6)]
    assert len(reviewers) == 6
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        await http.get("/consultations/code-of-conduct-2026", params={"after": system.app.head()})
        tokens = [await token(http, f"r{i}@example.org") for i in range(6)]
        progress = await http.get(C + "/progress", params={"after": system.app.head()}, headers=tokens[0])
        assert progress.json()["total"] == 6
        claims = await asyncio.gather(*(http.post(C + "/claim-next", headers=t) for t in tokens))
    assert [c.status_code for c in claims] == [201] * 6, [c.text for c in claims]
    assert sorted(c.json()["response_id"] for c in claims) == sorted(str(r) for r in responses)


async def test_one_reviewers_claim_nexts_at_once_each_get_another_response(live_url: str, system: System, staff: dict[str, UUID]) -> None:
    """A tester's: 24 at once by one reviewer gave 16 responses, some claimed again (a renewal) as the view lagged."""
    responses = submit(system, 8)
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        await http.get("/consultations/code-of-conduct-2026", params={"after": system.app.head()})
        t = await token(http, "reviewer@example.org")
        await http.get(C + "/progress", params={"after": system.app.head()}, headers=t)
        claims = await asyncio.gather(*(http.post(C + "/claim-next", headers=t) for _ in range(8)))
    assert [c.status_code for c in claims] == [201] * 8, [c.text for c in claims]
    assert sorted(c.json()["response_id"] for c in claims) == sorted(str(r) for r in responses)


async def test_claim_next_looks_past_a_page_of_responses_claimed_since_the_view_saw_them(
    system: System, store_env: dict[str, str], settings: Settings, staff: dict[str, UUID], sync_redis: Any, redis_prefix: str,
) -> None:
    """An operator's: six reviewers claiming together got `queue-empty` with thousands of responses new, as
    claim-next tried only the first 20 the view listed and others had taken those since."""
    responses = submit(system, 25)
    for projection, view in views.VIEWS.values():
        Follower(system.app, projection(view(sync_redis, redis_prefix))).catch_up()
    for response in responses[:20]:  # the view, not followed here, still lists them as new
        system.review.claim(response, staff["reviewer2"], timedelta(minutes=30))
    async with AsyncTestClient(create_app(msgspec.structs.replace(settings, inline_followers=False), store_env)) as client:
        claimed = await client.post(C + "/claim-next", headers=await token(client, "reviewer@example.org"))
    assert claimed.status_code == 201 and claimed.json()["response_id"] == str(responses[20]), claimed.text


async def test_reviewers_tag_flag_and_quote_and_the_queue_filters_by_them(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    first, second, third = submit(system, 3)
    for response in (first, second):
        assert (await client.post(f"/review/responses/{response}/claim", headers=headers["reviewer"])).status_code == 201
    r = headers["reviewer"]
    assert (await client.post(f"/review/responses/{first}/tags", json={"theme_id": "ai_use"}, headers=r)).status_code == 201
    assert (await client.post(f"/review/responses/{first}/tags", json={"theme_id": "consent"}, headers=r)).status_code == 201
    again = await client.post(f"/review/responses/{first}/tags", json={"theme_id": "ai_use"}, headers=r)
    assert again.status_code == 201 and again.json()["position"] is None  # already tagged: nothing recorded
    untag = await client.delete(f"/review/responses/{first}/tags/consent", headers=r)
    assert untag.status_code == 200
    missing = await client.delete(f"/review/responses/{first}/tags/consent", headers=r)
    assert missing.status_code == 200 and missing.json()["position"] is None
    flagged = await client.post(f"/review/responses/{second}/flags", json={"flag": "duplicate", "reason": "same text", "duplicate_of": str(first)}, headers=r)
    assert flagged.status_code == 201
    quoted = await client.post(f"/review/responses/{first}/quotes", json={"question_id": "works_well", "start": 0, "end": 6}, headers=r)
    assert quoted.status_code == 201

    after = {"after": quoted.json()["position"]}
    by_tag = (await client.get(C + "/queue", params={"tag": "ai_use", **after}, headers=r)).json()
    assert [i["response_id"] for i in by_tag["items"]] == [str(first)] and by_tag["items"][0]["tags"] == ["ai_use"]
    assert by_tag["items"][0]["quotes"] == 1
    assert (await client.get(C + "/queue", params={"tag": "consent", **after}, headers=r)).json()["items"] == []
    by_flag = (await client.get(C + "/queue", params={"flag": "duplicate", **after}, headers=r)).json()
    assert [(i["response_id"], i["flags"]) for i in by_flag["items"]] == [(str(second), ["duplicate"])]
    mine = (await client.get(C + "/queue", params={"assignee": str(staff["reviewer"]), **after}, headers=r)).json()
    assert [i["response_id"] for i in mine["items"]] == [str(first), str(second)]
    new = (await client.get(C + "/queue", params={"state": "new", **after}, headers=r)).json()
    assert [i["response_id"] for i in new["items"]] == [str(third)]
    page = (await client.get(C + "/queue", params={"state": "claimed", "limit": 1, **after}, headers=r)).json()
    assert [i["response_id"] for i in page["items"]] == [str(first)] and page["next_cursor"] is not None
    rest = (await client.get(C + "/queue", params={"state": "claimed", "cursor": page["next_cursor"]}, headers=r)).json()
    assert [i["response_id"] for i in rest["items"]] == [str(second)] and rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("tags", {"theme_id": "weather"}, "theme_id"),
        ("flags", {"flag": "spam", "reason": " "}, "reason"),
        ("flags", {"flag": "duplicate", "reason": "again"}, "duplicate_of"),
        ("flags", {"flag": "spam", "reason": "ad", "duplicate_of": "SELF"}, "duplicate_of"),
        ("quotes", {"question_id": "works_well", "start": 3, "end": 500}, "end"),
        ("quotes", {"question_id": "familiarity", "start": 0, "end": 2}, "question_id"),
    ],
)
@ON_SQLITE_ONLY
async def test_bad_tags_flags_and_quotes_name_their_field_and_record_nothing(
    client: AsyncTestClient, system: System, headers: dict[str, dict[str, str]], path: str, body: dict[str, Any], field: str,
) -> None:
    (response,) = submit(system, 1)
    assert (await client.post(f"/review/responses/{response}/claim", headers=headers["reviewer"])).status_code == 201
    head = system.app.head()
    body = {k: str(response) if v == "SELF" else v for k, v in body.items()}
    r = await client.post(f"/review/responses/{response}/{path}", json=body, headers=headers["reviewer"])
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert system.app.head() == head


async def test_editors_maintain_the_coding_frame_and_retired_themes_take_no_new_tags(
    client: AsyncTestClient, system: System, headers: dict[str, dict[str, str]],
) -> None:
    themes = (await client.get("/review/consultations/code-of-conduct-2026/themes", headers=headers["reviewer"])).json()
    assert [t["id"] for t in themes][:5] == ["ai_use", "consent", "reporting_enforcement", "cultural_context", "scope_of_spaces"]
    e = headers["editor"]
    added = await client.post("/review/consultations/code-of-conduct-2026/themes", json={"id": "online_harassment", "label": "Online harassment"}, headers=e)
    assert added.status_code == 201
    duplicate = await client.post("/review/consultations/code-of-conduct-2026/themes", json={"id": "consent", "label": "Again"}, headers=e)
    assert duplicate.status_code == 422
    assert (await client.delete("/review/consultations/code-of-conduct-2026/themes/consent", headers=e)).status_code == 200
    (response,) = submit(system, 1)
    await client.post(f"/review/responses/{response}/claim", headers=headers["reviewer"])
    refused = await client.post(f"/review/responses/{response}/tags", json={"theme_id": "consent"}, headers=headers["reviewer"])
    assert refused.status_code == 422
    fresh = await client.post(f"/review/responses/{response}/tags", json={"theme_id": "online_harassment"}, headers=headers["reviewer"])
    assert fresh.status_code == 201
    listing = {t["id"]: t["retired"] for t in (await client.get("/review/consultations/code-of-conduct-2026/themes", headers=e)).json()}
    assert listing["consent"] is True and listing["online_harassment"] is False


async def test_a_filtered_page_never_passes_over_later_matches(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    responses = submit(system, 3)
    for response in responses:
        system.review.claim(response, staff["reviewer"], timedelta(minutes=30))
        system.review.tag(response, staff["reviewer"], "ai_use")
    for response in responses[:2]:
        system.review.complete(response, staff["reviewer"], Outcome.REVIEWED, "")
    system.review.release(responses[2], staff["reviewer"])
    params = {"tag": "ai_use", "state": "new", "limit": 2, "after": system.app.head()}
    first = (await client.get(C + "/queue", params=params, headers=headers["editor"])).json()
    assert first["items"] == [] and first["next_cursor"] is not None
    del params["after"]
    second = (await client.get(C + "/queue", params={**params, "cursor": first["next_cursor"]}, headers=headers["editor"])).json()
    assert [i["response_id"] for i in second["items"]] == [str(responses[2])] and second["next_cursor"] is None


def test_a_consultation_recorded_without_a_coding_frame_gets_one_from_its_first_theme(
    system: System, staff: dict[str, UUID], seed: Definition,
) -> None:
    """Consultations recorded before coding frames existed have none: tags are refused clearly, editors start one."""
    older = Consultation(msgspec.structs.replace(seed, slug="older-one"))
    system.app.save(older)  # as recorded before consultations came with a frame
    (receipt,) = system.consultations.submit_batch([Submission("older-one", {"familiarity": "read"})])
    system.review.claim(receipt.id, staff["reviewer"], timedelta(minutes=30))
    with pytest.raises(InvalidInput, match="not a theme"):
        system.review.tag(receipt.id, staff["reviewer"], "ai_use")
    system.review.add_theme("older-one", Theme(id="ai_use", label="AI use"), staff["editor"])
    assert system.review.tag(receipt.id, staff["reviewer"], "ai_use") is not None


async def test_problem_titles_fit_the_case_they_name(client: AsyncTestClient, system: System, headers: dict[str, dict[str, str]]) -> None:
    (response,) = submit(system, 1)
    url = f"/review/responses/{response}"
    head = system.app.head()
    unheld = await client.post(f"{url}/release", headers=headers["reviewer"])  # nobody holds it
    assert unheld.status_code == 409 and unheld.json()["type"] == "/problems/claim-conflict"
    assert unheld.json()["title"] == "This response is not claimed by you"
    assert unheld.json()["detail"].startswith("Claim the response first") and "holder" not in unheld.json()
    reopen = await client.post(f"{url}/reopen", json={"reason": "Second look."}, headers=headers["editor"])
    assert reopen.status_code == 409 and reopen.json()["type"] == "/problems/review-not-completed"
    assert reopen.json()["title"] == "The review is not completed"
    assert reopen.json()["detail"] == "The review is not completed, so there is nothing to reopen."
    assert system.app.head() == head
    assert (await client.post(f"{url}/claim", headers=headers["reviewer"])).status_code == 201
    taken = await client.post(f"{url}/release", headers=headers["reviewer2"])  # someone else holds it
    assert taken.json()["title"] == "This response is not claimed by you" and taken.json()["detail"].startswith("Claimed by ")
    assert (await client.post(f"{url}/complete", json={"outcome": "reviewed"}, headers=headers["reviewer"])).status_code == 201
    done = await client.post(f"{url}/notes", json={"text": "more"}, headers=headers["reviewer"])
    assert (done.json()["type"], done.json()["title"]) == ("/problems/review-completed", "The review is completed")
    assert done.json()["detail"].startswith("The review was completed as reviewed")


async def test_a_missing_thing_named_in_the_body_is_a_422_in_the_path_a_404(client: AsyncTestClient, system: System, headers: dict[str, dict[str, str]]) -> None:
    (response,) = submit(system, 1)
    r = headers["reviewer"]
    assert (await client.post(f"/review/responses/{response}/claim", headers=r)).status_code == 201
    head = system.app.head()
    flagged = await client.post(f"/review/responses/{response}/flags", json={"flag": "duplicate", "reason": "same", "duplicate_of": str(uuid4())}, headers=r)
    assert flagged.status_code == 422 and flagged.json()["errors"][0]["field"] == "duplicate_of", flagged.text
    # A response of another consultation is no duplicate of this one's (a tester's: it was accepted).
    system.consultations.load(msgspec.structs.replace(system.consultations.get(SLUG).definition, slug="another-one"))
    system.consultations.open("another-one")
    (elsewhere,) = system.consultations.submit_batch([Submission("another-one", {"familiarity": "read"})])
    head = system.app.head()
    flagged = await client.post(f"/review/responses/{response}/flags", json={"flag": "duplicate", "reason": "same", "duplicate_of": str(elsewhere.id)}, headers=r)  # type: ignore[union-attr]
    assert flagged.status_code == 422 and flagged.json()["errors"][0]["field"] == "duplicate_of", flagged.text
    assert system.app.head() == head
    assert (await client.post(f"/review/responses/{uuid4()}/claim", headers=r)).status_code == 404

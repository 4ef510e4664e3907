"""The published report through HTTP: public routes and their visibility policy, the editorial desk by role,
bad paths, withdrawals, erasure after publication, and the served bytes equal to `agora report build`'s."""

from __future__ import annotations

import asyncio
import io
import re
import time
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.public import pages
from cli.main import main
from domain.consultations.service import Submission
from domain.reports.report import QuoteRef
from domain.review.case import Flag, Outcome
from runtime import System
from workers import views
from tests.conftest import ON_SQLITE_ONLY, REDIS_URL, ROLES, SLUG
from tests.integration.test_report_publish import tamper

LEASE = timedelta(minutes=10)
SELECTED = "The AI rules are clear and fair."
NOT_SELECTED = "Zanzibar is a passage marked but never selected."
EXCLUDED = "Buy cheap watches at qwertyspam dot example."
UNREVIEWED = "Left for later, quokka."
DRAFT = "Unpublished-draft-paragraph"
SECRETS = ["Zanzibar", "qwertyspam", "quokka", DRAFT]
DESK = f"/staff/consultations/{SLUG}/report"
PUBLIC = f"/consultations/{SLUG}/report"


def story(system: System, staff: dict[str, UUID]) -> list[UUID]:
    """Four responses: one quoted (selected), one with a candidate nobody selected, one excluded as spam, one unreviewed."""
    answers = [
        {"familiarity": "read", "works_well": SELECTED, "join_session": True},
        {"familiarity": "know_well", "works_well": NOT_SELECTED},
        {"familiarity": "not_aware", "works_well": EXCLUDED},
        {"familiarity": "read", "works_well": UNREVIEWED},
    ]
    ids = [r.id for r in system.consultations.submit_batch([Submission(SLUG, a) for a in answers])]  # type: ignore[union-attr]
    review, reviewer = system.review, staff["reviewer"]
    for rid, text, outcome in ((ids[0], SELECTED, Outcome.REVIEWED), (ids[1], NOT_SELECTED, Outcome.REVIEWED), (ids[2], EXCLUDED, Outcome.EXCLUDED)):
        review.claim(rid, reviewer, LEASE)
        review.mark_quote(rid, reviewer, "works_well", 0, len(text))
        if outcome is Outcome.EXCLUDED:
            review.flag(rid, reviewer, Flag.SPAM, "an advert")
        else:
            review.tag(rid, reviewer, "ai_use")
        review.complete(rid, reviewer, outcome, "spam" if outcome is Outcome.EXCLUDED else "")
    system.reports.write_section(SLUG, staff["editor"], "we-asked", "We asked", "Seven *questions*, <b>raw</b> [a link](https://example.org), [no](javascript:alert(1)).")
    system.reports.select_quote(SLUG, staff["editor"], quote(ids[0], SELECTED))
    return ids


def quote(response_id: UUID, text: str) -> QuoteRef:
    return QuoteRef(response_id, "works_well", 0, len(text))


def finish(system: System, staff: dict[str, UUID], ids: list[UUID]) -> None:
    system.review.claim(ids[3], staff["reviewer"], LEASE)
    system.review.complete(ids[3], staff["reviewer"], Outcome.REVIEWED, "")
    system.consultations.close(SLUG)


async def publish(client: AsyncTestClient, headers: dict[str, str], final: bool = False) -> dict[str, Any]:
    r = await client.post(f"{DESK}/versions", json={"final": final}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


async def every_public_route(client: AsyncTestClient, version: int, after: int) -> dict[str, bytes]:
    """Everything the public can fetch about a version, by route (the zip's files one by one)."""
    got: dict[str, bytes] = {}
    for path, accept in (
        (PUBLIC, "application/json"), (PUBLIC, "text/html"), (f"{PUBLIC}.html", "*/*"), (f"{PUBLIC}/versions", "*/*"),
        (f"{PUBLIC}/versions/{version}", "*/*"), (f"{PUBLIC}/versions/{version}", "text/html"), (f"{PUBLIC}/versions/{version}.html", "*/*"),
    ):
        r = await client.get(path, params={"after": after}, headers={"Accept": accept})
        assert r.status_code == 200, (path, r.text)
        got[f"{path} {accept}"] = r.content
    r = await client.get(f"{PUBLIC}/versions/{version}/data.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    got.update((f"data.zip/{name}", data) for name, data in unzip(r.content).items())
    return got


async def test_no_public_route_shows_a_draft_an_unselected_quote_or_an_excluded_response(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    story(system, staff)
    published = await publish(client, headers["editor"])
    # Written after the version was published: a draft, not public.
    r = await client.put(f"{DESK}/sections/you-said", json={"title": "You said", "markdown": DRAFT}, headers=headers["editor"])
    assert r.status_code == 200, r.text
    # The staff preview has it (so the search below can find it where it is)...
    preview = await client.get(f"{DESK}/preview", headers=headers["editor"])
    assert DRAFT.encode() in preview.content and SELECTED.encode() in preview.content
    # ...no public route does, nor any file of the open data.
    got = await every_public_route(client, published["version"], published["after"])
    assert len(got) == 7 + 13
    for route, body in got.items():
        for secret in SECRETS:
            assert secret.encode() not in body, (secret, route)
    for route in (f"{PUBLIC} application/json", f"{PUBLIC} text/html", "data.zip/quotes.csv", "data.zip/report.json"):
        assert SELECTED.encode() in got[route], route
    page = got[f"{PUBLIC} text/html"].decode()
    assert "<b>raw</b>" not in page and "&lt;b&gt;raw&lt;/b&gt;" in page and '<a href="https://example.org">a link</a>' in page
    assert "javascript:alert" not in page.replace("[no](javascript:alert(1))", "")  # shown as text, never a link
    assert "Interim report" in page and '<html lang="en">' in page and "<svg" in page and "<script" not in page
    shared = pages.ENV.get_template("page.html.j2").render(title="", heading="", about=None, warning=None, paragraphs=[], buttons=[], links=[])
    rules = re.search(r"<style>\n(.*?\n:focus-visible[^\n]*\n)", shared, re.S).group(1)  # the one page's own rules
    assert f"<style>\n{rules}" in page and 'rel="icon"' not in page  # the page's policy loads no image


async def test_json_and_html_by_accept_with_etags_and_304(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    story(system, staff)
    published = await publish(client, headers["editor"])
    r = await client.get(PUBLIC, params={"after": published["after"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["version"] == 1 and r.json()["final"] is False and r.headers["vary"] == "Accept"
    assert r.headers["cache-control"] == "public, no-cache"
    again = await client.get(PUBLIC, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    await wait_for_checkpoint(system, published["position"])  # the page cites it once it is signed
    page = await client.get(PUBLIC, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html") and page.headers["etag"] != r.headers["etag"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert (await client.get(f"{PUBLIC}.html", headers={"If-None-Match": page.headers["etag"]})).status_code == 304
    # The page's "as JSON" link gives JSON to a browser too (a tester's opened the page again).
    assert '/versions/1.json">This version as JSON' in page.text
    as_json = await client.get(f"{PUBLIC}/versions/1.json", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert as_json.headers["content-type"].startswith("application/json") and as_json.content == r.content and "vary" not in as_json.headers
    listed = (await client.get(f"{PUBLIC}/versions")).json()["versions"]
    assert [(v["version"], v["final"], v["digest"], v["withdrawn"]) for v in listed] == [(1, False, published["digest"], None)]
    assert "by" not in listed[0]  # who published is for staff


async def test_bad_paths_answer_problems(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    ids = story(system, staff)
    r = await client.get(PUBLIC)
    assert (r.status_code, r.json()["type"]) == (404, "/problems/report-not-published")
    r = await client.get(f"{PUBLIC}.html", headers={"Accept": "text/html"})  # a page, as below (a tester's got JSON here)
    assert (r.status_code, r.headers["content-type"].split(";")[0]) == (404, "text/html") and "<h1>No report yet</h1>" in r.text
    r = await client.get("/consultations/nowhere/report")
    assert (r.status_code, r.json()["type"]) == (404, "/problems/consultation-not-found")
    # A final version while the consultation is open and a response unreviewed: 409, nothing recorded.
    head = system.app.head()
    r = await client.post(f"{DESK}/versions", json={"final": True}, headers=headers["editor"])
    assert (r.status_code, r.json()["type"], r.json()["left"]) == (409, "/problems/report-not-final", 1)
    assert system.app.head() == head
    # Quotes: not a candidate, or the response is excluded: 422.
    for body in (
        {"response_id": str(ids[0]), "question_id": "works_well", "start": 0, "end": 3},
        {"response_id": str(ids[2]), "question_id": "works_well", "start": 0, "end": len(EXCLUDED)},
        {"response_id": str(uuid4()), "question_id": "works_well", "start": 0, "end": 3},
    ):
        r = await client.post(f"{DESK}/quotes", json=body, headers=headers["editor"])
        assert (r.status_code, r.json()["type"]) == (422, "/problems/quote-not-candidate"), r.text
    r = await client.post(f"{DESK}/quotes", json={"response_id": str(ids[0]), "question_id": "works_well", "start": 0, "end": 3, "x": 1}, headers=headers["editor"])
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "x"
    r = await client.put(f"{DESK}/sections/we-did", json={"title": "T", "markdown": "x" * 20_001}, headers=headers["editor"])
    assert r.status_code == 400
    assert system.app.head() == head
    published = await publish(client, headers["editor"])
    for path in (f"{PUBLIC}/versions/2", f"{PUBLIC}/versions/0", f"{PUBLIC}/versions/abc", f"{PUBLIC}/versions/2.html", f"{PUBLIC}/versions/2/data.zip"):
        r = await client.get(path, params={"after": published["after"]} if "zip" not in path else None)
        assert (r.status_code, r.json()["type"]) == (404, "/problems/report-not-found"), path
    # A browser opening a page's address gets a page, not the problem's JSON (a newcomer's).
    r = await client.get(f"{PUBLIC}/versions/9.html", headers={"Accept": "text/html"})
    assert (r.status_code, r.headers["content-type"].split(";")[0]) == (404, "text/html")
    assert "<h1>No such report version</h1>" in r.text and "There is no version 9" in r.text and "frame-ancestors 'none'" in r.headers["content-security-policy"]
    # A correction needs what changed and why.
    r = await client.post(f"{DESK}/corrections", json={"erratum": "a count", "reason": " "}, headers=headers["editor"])
    assert (r.status_code, r.json()["type"]) == (422, "/problems/invalid-input")
    r = await client.post(f"{DESK}/corrections", json={"erratum": "a count"}, headers=headers["editor"])
    assert r.status_code == 400
    r = await client.post(f"{DESK}/versions/7/withdraw", json={"reason": "wrong"}, headers=headers["editor"])
    assert r.status_code == 404
    # A number in the path is plain digits (an attacker's): litestar's int() took these as version 1, and 1_0 as 10.
    assert (await client.get(f"{PUBLIC}/versions/1/data.zip")).status_code == 200
    for number in ("%EF%BC%91", "%D9%A1", "+1", "%201", "01", "1_0"):
        r = await client.get(f"{PUBLIC}/versions/{number}/data.zip")
        assert r.status_code == 404 and r.json()["type"] == "/problems/not-found", (number, r.status_code, r.headers)
        r = await client.post(f"{DESK}/versions/{number}/withdraw", json={"reason": "wrong"}, headers=headers["editor"])
        assert r.status_code == 404, number
    assert (await client.get(f"{PUBLIC}/versions/1/data.zip")).status_code == 200  # nothing withdrawn


async def test_a_publication_that_names_its_version_is_published_once_however_often_it_is_sent(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    """A double click on "publish" recorded two versions the same but for their number."""
    story(system, staff)
    preview = (await client.get(f"{DESK}/preview", headers=headers["editor"])).json()
    first = await client.post(f"{DESK}/versions", json={"version": preview["version"]}, headers=headers["editor"])
    again = await client.post(f"{DESK}/versions", json={"version": preview["version"]}, headers=headers["editor"])
    assert (first.status_code, first.json()["version"]) == (201, 1)
    assert (again.status_code, again.json()["type"]) == (409, "/problems/report-conflict")
    assert again.json()["detail"] == "Version 1 is published already: this would publish version 2. Preview it first."
    ahead = await client.post(f"{DESK}/corrections", json={"erratum": "e", "reason": "r", "version": 3}, headers=headers["editor"])
    assert (ahead.status_code, ahead.json()["detail"]) == (409, "The next version is 2, not 3.")
    for body in ({"version": 0}, {"version": "2"}):
        refused = await client.post(f"{DESK}/versions", json=body, headers=headers["editor"])
        assert refused.status_code in (400, 422) and refused.json()["type"] in ("/problems/malformed-request", "/problems/invalid-input"), refused.text
    assert [v.version for v in system.reports.versions(SLUG)] == [1]
    corrected = await client.post(f"{DESK}/corrections", json={"erratum": "e", "reason": "r", "version": 2}, headers=headers["editor"])
    assert (corrected.status_code, corrected.json()["version"]) == (201, 2)
    assert (await client.post(f"{DESK}/versions", json={}, headers=headers["editor"])).json()["version"] == 3  # without it, as before


async def test_withdrawn_versions_stay_listed_but_their_content_is_gone_and_corrections_say_what_changed(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    story(system, staff)
    await publish(client, headers["editor"])
    r = await client.post(f"{DESK}/corrections", json={"erratum": "The count of spam", "reason": "A typo"}, headers=headers["editor"])
    assert r.status_code == 201 and r.json()["version"] == 2
    page = (await client.get(f"{PUBLIC}/versions/2.html", params={"after": r.json()["after"]})).text
    assert "Corrected version" in page and "The count of spam" in page and "A typo" in page
    r = await client.post(f"{DESK}/versions/2/withdraw", json={"reason": "Published by mistake"}, headers=headers["editor"])
    assert r.status_code == 201
    after = r.json()["position"]
    gone = await client.get(f"{PUBLIC}/versions/2", params={"after": after})
    assert (gone.status_code, gone.json()["type"], gone.json()["reason"]) == (410, "/problems/report-withdrawn", "Published by mistake")
    assert gone.json()["withdrawn_at"].endswith("Z")  # as every time in a JSON answer is written
    page = await client.get(f"{PUBLIC}/versions/2.html")
    assert page.status_code == 410 and "withdrawn" in page.text and "Published by mistake" in page.text and SELECTED not in page.text
    assert '<section class="warning" aria-labelledby="withdrawn">' in page.text and ":focus-visible{outline:3px solid" in page.text
    assert (await client.get(f"{PUBLIC}/versions/2/data.zip")).status_code == 410
    listed = (await client.get(f"{PUBLIC}/versions")).json()["versions"]
    assert [v["withdrawn"]["reason"] if v["withdrawn"] else None for v in listed] == [None, "Published by mistake"]
    assert listed[1]["erratum"] == "The count of spam"
    # People following "Every version" get a page, not JSON (a newcomer's): by Accept, or by its own address.
    assert f'href="{PUBLIC}/versions.html">Every version of this report' in page.text
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for listing in (await client.get(f"{PUBLIC}/versions", headers=browser), await client.get(f"{PUBLIC}/versions.html")):
        assert listing.status_code == 200 and listing.headers["content-type"].startswith("text/html"), listing.text
        assert "every version of the report" in listing.text and "Published by mistake" in listing.text and "The count of spam" in listing.text
        assert f'<a href="{PUBLIC}/versions/1.html">1</a>' in listing.text and f'href="{PUBLIC}/versions/2.html"' not in listing.text
        assert "default-src 'none'" in listing.headers["content-security-policy"]
    # The latest standing version is served; once every version is withdrawn, the latest is gone.
    assert (await client.get(PUBLIC)).json()["version"] == 1
    r = await client.post(f"{DESK}/versions/1/withdraw", json={"reason": "Superseded"}, headers=headers["editor"])
    assert (await client.get(PUBLIC, params={"after": r.json()["position"]})).status_code == 410
    r = await client.post(f"{DESK}/versions/1/withdraw", json={"reason": "again"}, headers=headers["editor"])
    assert (r.status_code, r.json()["type"]) == (409, "/problems/report-conflict")
    # The view rebuilt from the log lists the same.
    listed = (await client.get(f"{PUBLIC}/versions")).content
    with system.redis() as sync_redis:
        views.rebuild(system.app, sync_redis, system.settings.redis_prefix, "report")
    assert (await client.get(f"{PUBLIC}/versions")).content == listed


async def test_a_quote_erased_after_publication_leaves_every_public_route(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    ids = story(system, staff)
    published = await publish(client, headers["editor"])
    assert SELECTED in (await client.get(PUBLIC, params={"after": published["after"]})).text  # now kept in memory
    reviewer = staff["reviewer"]
    system.review.reopen(ids[0], staff["editor"], "a name in it")
    system.review.claim(ids[0], reviewer, LEASE)
    system.review.redact(ids[0], reviewer, "works_well", 0, 6, "a name")
    system.review.complete(ids[0], reviewer, Outcome.REVIEWED, "")
    shredded = system.review.shred_originals(ids[0], staff["admin"], "works_well")
    got = await every_public_route(client, 1, shredded)
    for route, body in got.items():
        assert SELECTED.encode() not in body and b"rules are clear" not in body, route
    assert "This passage has been erased" in got[f"{PUBLIC} text/html"].decode()
    # It still verifies: the erasure is recorded, not a difference.
    assert system.reports.verify(SLUG, 1).ok


MATRIX = [
    ("POST", DESK, None, {"editor"}),
    ("PUT", DESK + "/sections/we-did", {"title": "We did", "markdown": "x"}, {"editor"}),
    ("DELETE", DESK + "/sections/we-did", None, {"editor"}),
    ("GET", DESK + "/candidates", None, {"editor", "auditor", "admin"}),
    ("POST", DESK + "/quotes", {"response_id": "{id}", "question_id": "works_well", "start": 0, "end": 3}, {"editor"}),
    ("DELETE", DESK + "/quotes/{id}/works_well/0/3", None, {"editor"}),
    ("GET", DESK + "/preview", None, {"editor", "auditor", "admin"}),
    ("GET", DESK + "/preview.html", None, {"editor", "auditor", "admin"}),
    ("POST", DESK + "/versions", {"final": False}, {"editor"}),
    ("POST", DESK + "/corrections", {"erratum": "e", "reason": "r"}, {"editor"}),
    ("POST", DESK + "/versions/1/withdraw", {"reason": "r"}, {"editor"}),
    ("GET", DESK + "/versions", None, {"editor", "auditor", "admin"}),
    ("GET", DESK + "/versions/1/provenance", None, {"editor", "auditor", "admin"}),
    ("GET", DESK + "/versions/1/verify", None, {"editor", "auditor", "admin"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
@ON_SQLITE_ONLY
async def test_every_desk_route_with_every_role_and_without_credentials(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
    method: str, path: str, body: dict[str, Any] | None, allowed: set[str],
) -> None:
    ids = story(system, staff)
    system.reports.publish(SLUG, staff["editor"], final=False)
    url = path.format(id=ids[0])
    json = {k: v.format(id=ids[0]) if isinstance(v, str) else v for k, v in body.items()} if body else None
    for role in [None, *ROLES]:
        r = await client.request(method, url, json=json, headers=headers[role] if role else {})
        if role is None:
            assert r.status_code == 401, r.text
        elif role in allowed:
            assert r.status_code not in (401, 403), (role, r.text)
        else:
            assert r.status_code == 403, (role, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")


async def test_provenance_names_the_responses_and_review_steps_behind_quotes_and_themes(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    ids = story(system, staff)
    await publish(client, headers["editor"])
    r = await client.get(f"{DESK}/versions/1/provenance", headers=headers["auditor"])
    assert r.status_code == 200, r.text
    trail = r.json()
    assert [q["response_id"] for q in trail["quotes"]] == [str(ids[0])]
    assert {"quote-marked", "quote-selected"} <= {s["what"] for s in trail["quotes"][0]["steps"]}
    (ai,) = [t for t in trail["themes"] if t["theme_id"] == "ai_use"]
    assert sorted(ai["responses"]) == sorted([str(ids[0]), str(ids[1])])  # the excluded one is not counted
    candidates = (await client.get(f"{DESK}/candidates", headers=headers["editor"])).json()
    assert {(c["text"], c["selected"], c["excluded"]) for c in candidates} == {(SELECTED, True, False), (NOT_SELECTED, False, False), (None, False, True)}


async def wait_for_checkpoint(system: System, position: int) -> None:
    """The page cites the checkpoint covering its position once the checkpointer has signed one: wait (bounded) for it."""
    deadline = time.monotonic() + 10
    while system.ledger.covering(position) is None:
        assert time.monotonic() < deadline, "no checkpoint covers the version"
        await asyncio.sleep(0.05)


async def test_served_bytes_are_what_agora_report_build_writes_and_verify_says_ok(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
    store_env: dict[str, str], redis_prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    ids = story(system, staff)
    finish(system, staff, ids)
    published = await publish(client, headers["editor"], final=True)
    await wait_for_checkpoint(system, published["position"])
    served = {
        "report.json": (await client.get(f"{PUBLIC}/versions/1", params={"after": published["after"]})).content,
        "report.html": (await client.get(f"{PUBLIC}/versions/1.html")).content,
        "data.zip": (await client.get(f"{PUBLIC}/versions/1/data.zip")).content,
    }
    assert served["report.html"] == (await client.get(PUBLIC, headers={"Accept": "text/html"})).content
    assert b"Signed checkpoint" in served["report.html"] and b"Interim report" not in served["report.html"]
    # An optional question says how many did not answer it (a tester read "Yes 75%" as three in four respondents).
    no_answer = '<tr><th scope="row">No answer</th><td class="n">2</td><td class="n">–</td><td class="n">3</td></tr>'.encode()
    assert served["report.html"].count(no_answer) == 1 and b"Share of those who answered" in served["report.html"]
    for name, value in {**store_env, "REDIS_URL": REDIS_URL, "AGORA_REDIS_PREFIX": redis_prefix, "AGORA_SECRET": "t" * 48}.items():
        monkeypatch.setenv(name, value)
    for args, out in ((["--version", "1"], "by-version"), (["--at", str(published["position"])], "by-position"), ([], "latest")):
        main(["report", "build", SLUG, *args, "--out", str(tmp_path / out)])
        assert {name: (tmp_path / out / name).read_bytes() for name in served} == served, out
    assert "published: digest " + published["digest"] in capsys.readouterr().out
    main(["report", "verify", SLUG, "--against", str(tmp_path / "latest" / "report.json")])
    out = capsys.readouterr().out
    assert out.startswith("ok: version 1") and "report.json matches it" in out  # says the copy was checked (a tester could not tell)
    # A later version withdrawn: verify checks the version the public reads, as build builds it (a tester's checked the withdrawn one).
    await publish(client, headers["editor"], final=True)
    system.reports.withdraw(SLUG, staff["editor"], "published twice")
    main(["report", "verify", SLUG])
    assert capsys.readouterr().out.startswith("ok: version 1 ")
    main(["report", "verify", SLUG, "--version", "2"])
    assert capsys.readouterr().out.startswith("ok: version 2 (withdrawn) ")
    with zipfile.ZipFile(io.BytesIO(served["data.zip"])) as z:  # fixed times and modes, stored: the same bytes on any machine
        assert {(i.date_time, i.compress_type, i.external_attr) for i in z.infolist()} == {((1980, 1, 1, 0, 0, 0), zipfile.ZIP_STORED, 0o644 << 16)}
    files = unzip(served["data.zip"])
    assert files["report.json"] == served["report.json"]
    assert list(files) == ["README.txt", "report.json", *(f"{t}.csv" for t in (
        "responses", "exclusions", "answers", "themes", "sessions", "quotes", "sections", "timeline", "errata", "campaigns", "campaign_answers"))]
    assert b"exclusions.csv: " in files["README.txt"] and b"spam,1\r\n" in files["exclusions.csv"]
    # A position where nothing was published: what would be (not published), a preview page.
    main(["report", "build", SLUG, "--at", str(published["position"] - 1), "--out", str(tmp_path / "before")])
    assert b"a preview, not published" in (tmp_path / "before" / "report.html").read_bytes()
    with pytest.raises(SystemExit, match="--at must be a position"):
        main(["report", "build", SLUG, "--at", "999999", "--out", str(tmp_path / "x")])
    # One stored event altered: verify fails, and with the published bytes names the first difference.
    submitted = next(n.id for n in system.app.recorder.select_notifications(start=1, limit=100) if n.originator_id == ids[1])
    tamper(system, submitted, (b'"know_well"', b'"not_aware"'))
    with pytest.raises(SystemExit, match="version 1 differs: .*altered"):
        main(["report", "verify", SLUG])
    with pytest.raises(SystemExit, match=r"version 1 differs: questions\[0\]\.options\[0\]\.received: 1 != 2"):
        main(["report", "verify", SLUG, "--against", str(tmp_path / "latest" / "report.json")])

"""One consultation at a time: each consultation's queue, progress and claim-next hold only its own responses."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import msgspec
from litestar.testing import AsyncTestClient

from domain.consultations.consultation import Definition
from domain.consultations.service import Submission
from runtime import System
from tests.conftest import SLUG, submit

OTHER = "second-one"


def second_consultation(system: System, seed: Definition, count: int) -> list[UUID]:
    system.consultations.load(msgspec.structs.replace(seed, slug=OTHER))
    receipts = system.consultations.submit_batch([Submission(OTHER, {"familiarity": "aware_not_read"}) for _ in range(count)])
    return [r.id for r in receipts]  # type: ignore[union-attr]


async def test_two_reviewers_on_two_consultations_never_receive_each_others_cases(
    client: AsyncTestClient, system: System, seed: Definition, headers: dict[str, dict[str, str]],
) -> None:
    ours = submit(system, 3)
    theirs = second_consultation(system, seed, 2)  # submitted after ours: the older cases are all ours
    after = {"after": system.app.head()}
    got: dict[str, list[str]] = {SLUG: [], OTHER: []}
    for _ in range(3):
        for slug, who in ((OTHER, "reviewer2"), (SLUG, "reviewer")):
            r = await client.post(f"/review/consultations/{slug}/claim-next", headers=headers[who])
            if slug == OTHER and len(got[OTHER]) == 2:
                assert (r.status_code, r.json()["type"]) == (404, "/problems/queue-empty"), r.text
                assert OTHER in r.json()["detail"]
                continue
            assert r.status_code == 201, r.text
            got[slug].append(r.json()["response_id"])
    assert got == {SLUG: [str(r) for r in ours], OTHER: [str(r) for r in theirs]}

    position = {"after": system.app.head()}
    for slug, expected in ((SLUG, ours), (OTHER, theirs)):
        page = (await client.get(f"/review/consultations/{slug}/queue", params=position, headers=headers["auditor"])).json()
        assert [(i["response_id"], i["consultation"], i["state"]) for i in page["items"]] == [(str(r), slug, "claimed") for r in expected]
        progress = (await client.get(f"/review/consultations/{slug}/progress", params=after, headers=headers["auditor"])).json()
        assert (progress["total"], progress["reviewed"]) == (len(expected), 0)
    overview = (await client.get("/review/consultations", params=after, headers=headers["auditor"])).json()
    assert [(c["slug"], c["accepting_responses"], c["progress"]["total"]) for c in overview] == [(SLUG, True, 3), (OTHER, True, 2)]


async def test_a_consultation_queue_lists_every_state_or_one_and_counts_its_own_progress(
    client: AsyncTestClient, system: System, seed: Definition, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    first, second, third = submit(system, 3)
    (other,) = second_consultation(system, seed, 1)
    system.review.claim(first, staff["reviewer"], timedelta(minutes=30))
    system.review.complete(first, staff["reviewer"], "excluded", "spam")  # type: ignore[arg-type]
    system.review.claim(second, staff["reviewer"], timedelta(minutes=30))
    system.review.claim(other, staff["reviewer"], timedelta(seconds=-1))  # lapsed: lists as new
    base = f"/review/consultations/{SLUG}"
    after = {"after": system.app.head()}
    every = (await client.get(base + "/queue", params=after, headers=headers["editor"])).json()
    assert [(i["response_id"], i["state"]) for i in every["items"]] == [(str(first), "excluded"), (str(second), "claimed"), (str(third), "new")]
    new = (await client.get(base + "/queue", params={"state": "new"}, headers=headers["editor"])).json()
    assert [i["response_id"] for i in new["items"]] == [str(third)]
    mine = (await client.get(base + "/queue", params={"assignee": str(staff["reviewer"])}, headers=headers["editor"])).json()
    assert [i["response_id"] for i in mine["items"]] == [str(second)]  # not the other consultation's, even lapsed
    theirs = (await client.get(f"/review/consultations/{OTHER}/queue", params={"state": "new"}, headers=headers["editor"])).json()
    assert [(i["response_id"], i["assignee"]) for i in theirs["items"]] == [(str(other), None)]
    paged = (await client.get(base + "/queue", params={"limit": 2}, headers=headers["editor"])).json()
    assert len(paged["items"]) == 2 and paged["next_cursor"] is not None
    rest = (await client.get(base + "/queue", params={"cursor": paged["next_cursor"]}, headers=headers["editor"])).json()
    assert [i["response_id"] for i in rest["items"]] == [str(third)] and rest["next_cursor"] is None
    progress = (await client.get(base + "/progress", headers=headers["auditor"])).json()
    assert (progress["total"], progress["reviewed"], progress["percent_reviewed"]) == (3, 1, 33.3)
    # The lapsed claim of the other consultation is claimed again by its next claim-next.
    claimed = await client.post(f"/review/consultations/{OTHER}/claim-next", headers=headers["reviewer2"])
    assert claimed.status_code == 201 and claimed.json()["response_id"] == str(other)


async def test_an_unknown_consultation_or_query_parameter_is_refused(
    client: AsyncTestClient, system: System, headers: dict[str, dict[str, str]],
) -> None:
    submit(system, 1)
    head = system.app.head()
    for method, path in (("GET", "queue"), ("GET", "progress"), ("POST", "claim-next")):
        r = await client.request(method, f"/review/consultations/nope/{path}", headers=headers["reviewer"] if method == "POST" else headers["editor"])
        assert (r.status_code, r.json()["type"]) == (404, "/problems/consultation-not-found"), r.text
    r = await client.get(f"/review/consultations/{SLUG}/queue", params={"consultation": "x"}, headers=headers["editor"])
    assert r.status_code == 400, r.text
    r = await client.get(f"/review/consultations/{SLUG}/queue", params={"state": "done"}, headers=headers["editor"])
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "state", r.text
    assert system.app.head() == head

"""The whole case on one route, and undoing a flag, a quote or a redaction: each an event with who and why."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar.testing import AsyncTestClient

from domain.consultations.service import Submission
from runtime import System
from tests.conftest import SLUG

TEXT = "Call Jane Roe on 555 0100 about the AI section."


async def test_a_case_shows_everything_and_each_undo_is_recorded_and_reflected(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    (receipt,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read", "works_well": TEXT})])
    r, base = headers["reviewer"], f"/review/responses/{receipt.id}"  # type: ignore[union-attr]

    async def post(path: str, body: dict[str, Any] | None = None, who: dict[str, str] = r) -> dict[str, Any]:
        answer = await client.post(base + path, json=body, headers=who)
        assert answer.status_code == 201, answer.text
        return answer.json()

    await post("/claim")
    await post("/notes", {"text": "Names someone."})
    await post("/tags", {"theme_id": "ai_use"})
    await post("/flags", {"flag": "personal_data", "reason": "a name and a number"})
    await post("/flags", {"flag": "spam", "reason": "looks like an advert"})
    await post("/quotes", {"question_id": "works_well", "start": 26, "end": 46})  # "about the AI section" as first given
    await post("/quotes", {"question_id": "works_well", "start": 0, "end": 13})  # "Call Jane Roe", before its redaction
    await post("/redactions", {"question_id": "works_well", "start": 5, "end": 13, "reason": "a name"})
    await post("/redactions", {"question_id": "works_well", "start": 19, "end": 27, "reason": "a number"})

    file = (await client.get(base + "/case", headers=r)).json()
    assert (file["consultation"], file["state"], file["holder"], file["tags"]) == (SLUG, "claimed", str(staff["reviewer"]), ["ai_use"])
    assert file["claimed_until"] is not None
    assert file["answers"]["works_well"] == "Call [redacted] on [redacted] about the AI section."
    assert [(f["flag"], f["reason"], f["by"]) for f in file["flags"]] == [
        ("personal_data", "a name and a number", str(staff["reviewer"])), ("spam", "looks like an advert", str(staff["reviewer"])),
    ]
    assert [n["text"] for n in file["notes"]] == ["Names someone."]
    # As the answer now reads (a tester read redacted names in quotes marked before the redaction).
    assert [(q["text"], q["current"]) for q in file["quotes"]] == [(TEXT[26:46], False), ("Call [redacted]", False)]
    assert [(x["reason"], x["originals_shredded"], x["reverted"]) for x in file["redactions"]] == [("a name", False, None), ("a number", False, None)]
    assert file["originals"] is None  # a reviewer never sees what was redacted
    admin = (await client.get(base + "/case", headers=headers["admin"])).json()
    assert admin["originals"] == {"works_well": TEXT}  # the admin sees what a shred would destroy

    # Undo each: a flag, the quote, the last redaction; every one needs a reason and names who.
    head = system.app.head()
    for path, body in (("/flags/spam/remove", {"reason": " "}), ("/quotes/unmark", {"question_id": "works_well", "start": 26, "end": 46, "reason": ""}),
                       ("/redactions/works_well/revert", {"reason": "\u200b"})):
        refused = await client.post(base + path, json=body, headers=r)
        assert (refused.status_code, refused.json()["errors"][0]["field"]) == (422, "reason"), refused.text
    not_flagged = await client.post(base + "/flags/abusive/remove", json={"reason": "x"}, headers=r)
    assert (not_flagged.status_code, not_flagged.json()["errors"][0]["field"]) == (422, "flag")
    not_marked = await client.post(base + "/quotes/unmark", json={"question_id": "works_well", "start": 0, "end": 4, "reason": "x"}, headers=r)
    assert (not_marked.status_code, not_marked.json()["errors"][0]["field"]) == (422, "start")
    other = await client.post(base + "/flags/spam/remove", json={"reason": "not mine"}, headers=headers["reviewer2"])
    assert other.status_code == 409  # only the holder of the claim
    assert system.app.head() == head

    await post("/flags/spam/remove", {"reason": "a real answer"})
    await post("/flags/personal_data/remove", {"reason": "redacted now"})
    await post("/quotes/unmark", {"question_id": "works_well", "start": 26, "end": 46, "reason": "too long"})
    reverted = await post("/redactions/works_well/revert", {"reason": "a public number"})

    file = (await client.get(base + "/case", headers=r)).json()
    assert file["answers"]["works_well"] == "Call [redacted] on 555 0100 about the AI section."
    assert [(f["flag"], f["removed"]["by"], f["removed_because"]) for f in file["flags"]] == [
        ("personal_data", str(staff["reviewer"]), "redacted now"), ("spam", str(staff["reviewer"]), "a real answer"),
    ]
    assert file["quotes"][0]["unmarked_because"] == "too long"
    assert [(x["reason"], x["reverted_because"]) for x in file["redactions"]] == [("a name", None), ("a number", "a public number")]
    queue = (await client.get(f"/review/consultations/{SLUG}/queue", params={"after": reverted["position"]}, headers=r)).json()
    assert [(i["flags"], i["quotes"]) for i in queue["items"]] == [([], 1)]  # the other quote stays
    flagged = (await client.get(f"/review/consultations/{SLUG}/queue", params={"flag": "spam"}, headers=r)).json()
    assert flagged["items"] == []
    history = [h["type"] for h in (await client.get(base + "/history", headers=headers["auditor"])).json()]
    assert history[-4:] == ["review.unflagged", "review.unflagged", "review.quote_unmarked", "review.redaction_reverted"]

    # Shredding now keeps what was reverted to: the answer reads as it does, the original is gone.
    await post("/redactions/works_well/shred", who=headers["admin"])
    assert system.review.answers(receipt.id)["works_well"] == "Call [redacted] on 555 0100 about the AI section."  # type: ignore[union-attr]
    admin = (await client.get(base + "/case", headers=headers["admin"])).json()
    assert admin["originals"] == {} and [x["originals_shredded"] for x in admin["redactions"]] == [True, True]  # the reverted one's text too
    assert [q["text"] for q in admin["quotes"]] == [TEXT[26:46], "Call [redacted]"]  # as the answer now reads
    gone = await client.post(base + "/redactions/works_well/revert", json={"reason": "undo"}, headers=r)
    assert (gone.status_code, gone.json()["errors"][0]["field"]) == (422, "question_id") and "shredded" in gone.json()["detail"]


async def test_the_case_route_needs_a_staff_role_and_an_existing_response(
    client: AsyncTestClient, system: System, headers: dict[str, dict[str, str]],
) -> None:
    (receipt,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read"})])
    base = f"/review/responses/{receipt.id}/case"  # type: ignore[union-attr]
    assert (await client.get(base)).status_code == 401
    for role in ("reviewer", "editor", "auditor", "admin"):
        file = await client.get(base, headers=headers[role])
        assert file.status_code == 200 and file.json()["state"] == "new" and file.json()["flags"] == [], file.text
    missing = await client.get(f"/review/responses/{UUID(int=1)}/case", headers=headers["editor"])
    assert (missing.status_code, missing.json()["type"]) == (404, "/problems/response-not-found")

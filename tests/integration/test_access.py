"""Who saw personal data: the attendee list, `agora signups export` and a response's free text each leave a record
in the log, which auditors read like any other event; a refused or failed read leaves none."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from cli.main import main
from domain.access.access import Access
from domain.consultations.consultation import Definition
from domain.signups.signup import Purpose
from runtime import System
from tests.conftest import REDIS_URL, submit
from tests.integration.test_signups import SESSIONS, future

ATTENDEES = f"/staff/consultations/{SESSIONS}/sessions/session_1300/attendees"


def accesses(system: System) -> list[Access.Recorded]:
    return list(system.app.select_events(Access.Recorded))


async def audited(client: AsyncTestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get("/audit/events", params={"type": "access.recorded"}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["events"]


@pytest.fixture
def attendee(system: System, seed: Definition) -> UUID:
    system.consultations.load(future(seed))
    signup = system.signups.request(SESSIONS, "session_1300", "Ada Attendee", "ada.attendee@example.net", True)
    system.signups.confirm(signup, system.signups.links.token(Purpose.CONFIRM, signup, 1))
    return signup


async def test_reading_the_attendee_list_is_recorded_and_audited(
    client: AsyncTestClient, system: System, attendee: UUID, staff: dict[str, UUID], headers: dict[str, dict[str, str]]
) -> None:
    assert (await client.get(ATTENDEES, headers=headers["reviewer"])).status_code == 403
    assert (await client.get(ATTENDEES.replace(SESSIONS, "no-such-one"), headers=headers["admin"])).status_code == 404
    assert (await client.get(ATTENDEES)).status_code == 401
    assert accesses(system) == []

    r = await client.get(ATTENDEES, headers=headers["admin"])
    assert r.status_code == 200 and r.json()[0]["name"] == "Ada Attendee"
    (record,) = accesses(system)
    assert (record.by, record.what, record.subject) == (staff["admin"], "attendee list", f"{SESSIONS}/session_1300")

    (shown,) = await audited(client, headers["auditor"])
    assert (shown["type"], shown["aggregate"], shown["actor"], shown["actor_name"]) == ("access.recorded", "access", str(staff["admin"]), "Root")
    assert shown["payload"] == {"what": "attendee list", "subject": f"{SESSIONS}/session_1300"}
    assert b"ada.attendee" not in (await client.get("/audit/events", headers=headers["auditor"])).content


async def test_reading_a_responses_free_text_is_recorded_by_whoever_read_it(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]]
) -> None:
    (response,) = submit(system, 1)
    assert (await client.get(f"/review/responses/{uuid4()}", headers=headers["reviewer"])).status_code == 404
    assert (await client.get(f"/review/responses/{response}", headers=headers["admin"])).status_code == 403
    assert accesses(system) == []
    for role in ("reviewer", "auditor"):
        r = await client.get(f"/review/responses/{response}", headers=headers[role])
        assert r.status_code == 200 and r.json()["answers"]["works_well"] == "answer 0"
    assert [(a.by, a.what, a.subject) for a in accesses(system)] == [
        (staff["reviewer"], "response free text", str(response)), (staff["auditor"], "response free text", str(response)),
    ]
    assert [e["actor_name"] for e in await audited(client, headers["admin"])] == ["Reviewer", "Auditor"]
    # The history of the response is its submission and review, not who read it.
    history = (await client.get(f"/review/responses/{response}/history", headers=headers["auditor"])).json()
    assert [e["type"] for e in history] == ["response.submitted"]


async def test_reading_quote_candidates_and_the_report_preview_is_recorded(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]]
) -> None:
    """Both show free text before publication (a marked passage may be a whole answer)."""
    base = "/staff/consultations/code-of-conduct-2026/report"
    (response,) = submit(system, 1)
    system.review.claim(response, staff["reviewer"], timedelta(minutes=5))
    system.review.mark_quote(response, staff["reviewer"], "works_well", 0, len("answer 0"))
    assert accesses(system) == []
    r = await client.get(f"{base}/candidates", headers=headers["admin"])
    assert r.status_code == 200 and r.json()[0]["text"] == "answer 0"
    for path in ("/preview", "/preview.html"):
        assert (await client.get(base + path, headers=headers["auditor"])).status_code == 200
    assert [(a.by, a.what, a.subject) for a in accesses(system)] == [
        (staff["admin"], "quote candidates", str(response)),
        (staff["auditor"], "report preview", "code-of-conduct-2026"), (staff["auditor"], "report preview", "code-of-conduct-2026"),
    ]


def test_exporting_the_signups_on_the_command_line_is_recorded_without_an_actor(
    system: System, attendee: UUID, store_env: dict[str, str], redis_prefix: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {**store_env, "REDIS_URL": REDIS_URL, "AGORA_REDIS_PREFIX": redis_prefix}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        main(["signups", "export", "--consultation", "no-such-one", "--session", "session_1300"])
    assert accesses(system) == []
    main(["signups", "export", "--consultation", SESSIONS, "--session", "session_1300"])
    assert "ada.attendee@example.net" in capsys.readouterr().out
    (record,) = accesses(system)
    assert (record.by, record.what, record.subject) == (None, "signups export", f"{SESSIONS}/session_1300")

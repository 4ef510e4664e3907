"""Redaction that removes the data: free text is sealed per answer, and shredding destroys the key."""

from __future__ import annotations

import unicodedata
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from cli.main import main
from domain.consultations.service import Submission
from runtime import System
from domain.staff.member import Role
from tests.conftest import SLUG, raw_storage

PASSWORD = "correct horse battery staple"
SECRET = "Call Jane Roe on +41 79 555 01 23 about the AI section."


@pytest.fixture
def people(system: System) -> dict[str, UUID]:
    admin = system.staff.enrol("admin@example.org", "Admin", PASSWORD, [Role.ADMIN], by=None)
    return {
        "admin": admin,
        "reviewer": system.staff.enrol("rev@example.org", "Rev", PASSWORD, [Role.REVIEWER], by=admin),
        "auditor": system.staff.enrol("aud@example.org", "Aud", PASSWORD, [Role.AUDITOR], by=admin),
    }


@pytest.fixture
def tokens(client: AsyncTestClient, people: dict[str, UUID]) -> dict[str, dict[str, str]]:
    auth = client.app.state.services.auth
    return {role: {"Authorization": f"Bearer {auth.create_token(identifier=str(member))}"} for role, member in people.items()}


def submitted(system: System) -> UUID:
    (receipt,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read", "works_well": SECRET})])
    return receipt.id  # type: ignore[union-attr]


async def test_a_redaction_replaces_the_span_and_shredding_destroys_the_original_for_good(
    client: AsyncTestClient, system: System, store_env: dict[str, str], tokens: dict[str, dict[str, str]],
) -> None:
    response = submitted(system)
    original = system.consultations.response(response).texts["works_well"]
    key = system.texts.get(original.key_id)
    assert key is not None and key in raw_storage(store_env)

    r = tokens["reviewer"]
    await client.post(f"/review/responses/{response}/claim", headers=r)
    start, end = SECRET.index("Jane"), SECRET.index(" about")
    redacted = await client.post(
        f"/review/responses/{response}/redactions", json={"question_id": "works_well", "start": start, "end": end, "reason": "a name and a phone number"}, headers=r,
    )
    assert redacted.status_code == 201, redacted.text
    now_reads = "Call [redacted] about the AI section."
    assert (await client.get(f"/review/responses/{response}", headers=tokens["auditor"])).json()["answers"]["works_well"] == now_reads
    assert system.texts.get(original.key_id) == key  # not yet confirmed: the original is still there

    shredded = await client.post(f"/review/responses/{response}/redactions/works_well/shred", headers=tokens["admin"])
    assert shredded.status_code == 201, shredded.text
    assert system.texts.get(original.key_id) is None
    assert key not in raw_storage(store_env)
    assert system.review.answers(response)["works_well"] == now_reads
    history = (await client.get(f"/review/responses/{response}/history", headers=tokens["auditor"])).json()
    assert [h["type"] for h in history][-2:] == ["review.redacted", "review.originals_shredded"]
    now_key = history[-2]["payload"]["sealed"]["sealed"]
    assert history[-2]["payload"] == {
        "question_id": "works_well", "start": start, "end": end, "reason": "a name and a phone number",
        "sealed": {"sealed": now_key, "state": "present"},
    }
    assert history[0]["payload"]["texts"]["works_well"] == {"sealed": original.key_id, "state": "shredded"}
    assert SECRET not in str(history) and "Jane" not in str(history)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question_id": "works_well", "start": 5, "end": 500, "reason": "name"}, "end"),
        ({"question_id": "works_well", "start": 0, "end": 4, "reason": " "}, "reason"),
        ({"question_id": "familiarity", "start": 0, "end": 2, "reason": "name"}, "question_id"),
        ({"question_id": "other_questions", "start": 0, "end": 2, "reason": "name"}, "question_id"),
    ],
)
async def test_a_redaction_that_cannot_apply_is_refused_and_records_nothing(
    client: AsyncTestClient, system: System, tokens: dict[str, dict[str, str]], body: dict[str, Any], field: str,
) -> None:
    response = submitted(system)
    await client.post(f"/review/responses/{response}/claim", headers=tokens["reviewer"])
    head = system.app.head()
    r = await client.post(f"/review/responses/{response}/redactions", json=body, headers=tokens["reviewer"])
    assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]]
    assert system.app.head() == head


async def test_a_redaction_given_the_passage_it_expects_is_refused_when_the_answer_reads_otherwise(
    client: AsyncTestClient, system: System, tokens: dict[str, dict[str, str]],
) -> None:
    """Spans taken from the answer as first read, the second after the first redaction moved the text: the
    second one's `expect` catches it (without it, it would cut the wrong characters)."""
    response = submitted(system)
    r = tokens["reviewer"]
    await client.post(f"/review/responses/{response}/claim", headers=r)
    url = f"/review/responses/{response}/redactions"
    name = {"start": SECRET.index("Jane"), "end": SECRET.index(" on"), "expect": "Jane Roe"}
    phone = {"start": SECRET.index("+41"), "end": SECRET.index(" about"), "expect": "+41 79 555 01 23"}
    assert (await client.post(url, json={"question_id": "works_well", **name, "reason": "a name"}, headers=r)).status_code == 201
    head = system.app.head()
    stale = await client.post(url, json={"question_id": "works_well", **phone, "reason": "a phone number"}, headers=r)
    assert stale.status_code == 422 and [e["field"] for e in stale.json()["errors"]] == ["expect"]
    assert "+41" not in stale.text  # the passage is not echoed
    assert system.app.head() == head
    now = system.review.answers(response)["works_well"]
    moved = {"start": now.index("+41"), "end": now.index(" about"), "expect": "+41 79 555 01 23"}
    assert (await client.post(url, json={"question_id": "works_well", **moved, "reason": "a phone number"}, headers=r)).status_code == 201
    assert system.review.answers(response)["works_well"] == "Call [redacted] on [redacted] about the AI section."


async def test_a_redactions_expected_passage_may_come_in_another_normal_form(
    client: AsyncTestClient, system: System, tokens: dict[str, dict[str, str]],
) -> None:
    """The answer is stored in NFC; a client on macOS may send the passage it expects in NFD (a tester's)."""
    (receipt,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read", "works_well": "Ask Nguyễn Văn An."})])
    response, r = receipt.id, tokens["reviewer"]  # type: ignore[union-attr]
    await client.post(f"/review/responses/{response}/claim", headers=r)
    stored = system.review.answers(response)["works_well"]
    span = {"start": stored.index("Nguy"), "end": stored.index("."), "expect": unicodedata.normalize("NFD", "Nguyễn Văn An")}
    redacted = await client.post(f"/review/responses/{response}/redactions", json={"question_id": "works_well", **span, "reason": "a name"}, headers=r)
    assert redacted.status_code == 201, redacted.text
    assert system.review.answers(response)["works_well"] == "Ask [redacted]."


async def test_shredding_needs_an_admin_and_a_redaction_first(
    client: AsyncTestClient, system: System, tokens: dict[str, dict[str, str]],
) -> None:
    response = submitted(system)
    await client.post(f"/review/responses/{response}/claim", headers=tokens["reviewer"])
    head = system.app.head()
    assert (await client.post(f"/review/responses/{response}/redactions/works_well/shred", headers=tokens["reviewer"])).status_code == 403
    unredacted = await client.post(f"/review/responses/{response}/redactions/works_well/shred", headers=tokens["admin"])
    assert unredacted.status_code == 422
    assert system.app.head() == head
    assert system.review.answers(response)["works_well"] == SECRET


async def test_after_restoring_an_old_key_backup_reshred_destroys_the_shredded_keys_again(
    client: AsyncTestClient, system: System, store_env: dict[str, str], tokens: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = submitted(system)
    original = system.consultations.response(response).texts["works_well"]
    backup = system.texts.get(original.key_id)
    await client.post(f"/review/responses/{response}/claim", headers=tokens["reviewer"])
    body = {"question_id": "works_well", "start": 0, "end": 4, "reason": "a name"}
    await client.post(f"/review/responses/{response}/redactions", json=body, headers=tokens["reviewer"])
    await client.post(f"/review/responses/{response}/redactions/works_well/shred", headers=tokens["admin"])
    # A restore from a backup taken before the shredding brings the key back...
    with system.texts.datastore.transaction(commit=True) as c:
        c.execute(f"INSERT INTO {system.texts.table} (key_id, key) VALUES ({system.texts.p}, {system.texts.p})", (original.key_id, backup))
    assert system.texts.get(original.key_id) == backup
    # ...and the log's destruction list takes it away again.
    for name, value in store_env.items():
        monkeypatch.setenv(name, value)
    main(["keys", "reshred"])
    assert "name 1 keys: 1 still held, destroyed now" in capsys.readouterr().out
    assert system.texts.get(original.key_id) is None
    main(["keys", "reshred"])  # a newcomer's: nothing restored, yet it said "destroyed again 1 keys"
    assert "name 1 keys: 0 still held" in capsys.readouterr().out
    assert backup not in raw_storage(store_env)
